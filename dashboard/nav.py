"""The page registry: which pages exist, in which section, in which order.

``app.py`` builds ``st.navigation`` from :func:`sections`. A new page is a file in
``app_pages/`` plus one :class:`PageSpec` here (part 2's tags, contact map, library map
and neighbours go in ``EXPLORE``). Pages link to each other with
``st.switch_page(nav.path("loop_finder"), query_params={"track": track_id})``.
"""
from __future__ import annotations

from dataclasses import dataclass

# The folder is app_pages/, not pages/. With a pages/ folder beside app.py, Streamlit (1.67)
# still serves a deep link such as /contact_map on a freshly started server by running
# pages/contact_map.py directly, before any session has called st.navigation: the router,
# its sections and the shared sidebar are skipped and an auto-generated page list appears
# (seen in the browser tests' screenshots). app_pages/ is never auto-discovered.


@dataclass(frozen=True)
class PageSpec:
    """One page: its file under app_pages/, its title, a Material icon and URL path."""

    name: str
    title: str
    icon: str
    default: bool = False

    @property
    def path(self) -> str:
        return f"app_pages/{self.name}.py"


#: Getting loops out of tracks (issue 12).
LOOPS = [
    PageSpec("home", "Home", ":material/home:", default=True),
    PageSpec("upload", "Add tracks", ":material/upload:"),
    PageSpec("loop_finder", "Loop finder", ":material/graphic_eq:"),
    PageSpec("export", "Export", ":material/download:"),
]

#: Exploring a library of loops (issue 13 adds: tags, contact_map, library_map, neighbors).
EXPLORE: list[PageSpec] = [
    PageSpec("neighbors", "Neighbours", ":material/hub:"),
    PageSpec("contact_map", "Contact map", ":material/grid_on:"),
    PageSpec("tags", "Tags", ":material/sell:"),
    PageSpec("library_map", "Library map", ":material/scatter_plot:"),
]

SECTIONS = {"Loops": LOOPS, "Explore": EXPLORE}


def path(name: str) -> str:
    """The app_pages/ file of a registered page (for st.switch_page / st.page_link)."""
    for specs in SECTIONS.values():
        for spec in specs:
            if spec.name == name:
                return spec.path
    raise KeyError(f"no page named {name!r}")


def sections() -> dict[str, list[PageSpec]]:
    """Non-empty sections in display order."""
    return {title: specs for title, specs in SECTIONS.items() if specs}
