"""LoopLab dashboard: ``streamlit run app.py``.

The router: ``st.navigation`` over the pages registered in ``dashboard/nav.py``
(files in ``app_pages/``), and the shared sidebar. Pages hold UI only; every
computation is an engine call (``engine/``), cached in ``dashboard/state.py``.
"""
from __future__ import annotations

import streamlit as st

from dashboard import nav, sidebar

st.set_page_config(page_title="LoopLab", page_icon="🔁", layout="wide")

pages = {title: [st.Page(spec.path, title=spec.title, icon=spec.icon, default=spec.default,
                         url_path=None if spec.default else spec.name)
                 for spec in specs]
         for title, specs in nav.sections().items()}
current = st.navigation(pages)
sidebar.render()
current.run()
