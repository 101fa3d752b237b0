"""The Streamlit dashboard's shared frame (UI only; all computing is in ``engine/``).

``nav``      the page registry (sections and pages; part 2 adds its pages here)
``state``    the workspace for this session and cached engine calls
``sidebar``  the sidebar every page shows (workspace, analysis settings)
``charts``   Plotly figures built from what the engine returns
``widgets``  small shared pieces: loop players with label buttons, progress bridges
"""
