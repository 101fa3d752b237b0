"""Tags: train a tag model on your loops, see how well it does, tag the workspace's loops."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import library_state as ls
from dashboard.widgets import Progress
from engine.errors import LoopLabError

st.title("Tags")
st.caption("Teach LoopLab your tags. Labels come from file names (\"kick\", \"bass\", "
           "\"house\"…), from audio rules (tempo class, density, percussiveness), both, or from "
           "instrument roles in a roles.csv. A held-out part of the loops measures each tag's "
           "F1; features a rule reads are hidden from that rule's label so the model cannot "
           "copy the answer.")

table = ls.source_picker("tg")
files = table["file"].astype(str).tolist()


def _cache_dir() -> str:
    return str(Path(ls.state.workspace_root()) / "cache")


c1, c2, c3 = st.columns(3)
source = c1.selectbox("Label source", ["audio", "filename", "hybrid", "roles"], key="tg_source",
                      help="audio: rules on the sound; filename: words in the file names; "
                           "hybrid: both; roles: the folder's roles.csv (file,roles).")
min_count = c2.number_input("Minimum loops per tag", 2, 100, 3, key="tg_min",
                            help="Tags on fewer loops are dropped (too rare to learn).")
trees = c3.select_slider("Trees", [100, 200, 400, 600], value=200, key="tg_trees")

train_col, _ = st.columns([1, 3])
go_train = train_col.button("Train", type="primary", icon=":material/model_training:",
                            key="tg_train", disabled=len(files) < 6)
if len(files) < 6:
    st.info("Training needs at least 6 loops. Add tracks, point to a folder of loops, or "
            "generate demo loops above.")

if go_train:
    from engine.tags import TrainConfig, train_tags

    roles_csv = None
    if source == "roles":
        folder = Path(str(st.session_state.get(ls.FOLDER_KEY, "")).strip() or ".")
        roles_csv = folder / "roles.csv"
    bar = Progress(f"Training on {len(files)} loops")
    try:
        res = train_tags(files=files, label_source=source, roles_csv=roles_csv,
                         cfg=TrainConfig(min_tag_count=int(min_count), n_estimators=int(trees),
                                         n_jobs=1),
                         cache_dir=_cache_dir(), progress=bar)
        bar.done(f"Trained {len(res.report['classes'])} tags")
        st.session_state["tags_result"] = res
        st.session_state.pop("tags_predictions", None)
    except (LoopLabError, ValueError, FileNotFoundError) as exc:
        bar.done("Training failed", ok=False)
        st.error(f"Could not train with {source} labels: {exc}")

res = st.session_state.get("tags_result")
if res is not None:
    rep = res.report
    lm = pd.DataFrame(rep["label_metrics_test"]).T.reset_index(names="tag")
    tm = rep["test_metrics"]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Tags learnt", len(rep["classes"]))
    m2.metric("Held-out macro F1", f"{tm['macro_f1_calibrated']:.2f}",
              help="F1 per tag averaged, on loops the model never saw, calibrated thresholds.")
    m3.metric("Majority baseline F1", f"{rep['majority_baseline']['test_macro_f1']:.2f}",
              help="Always answering each tag's most common value.")
    m4.metric("Loops train / val / test", f"{rep['n_train']} / {rep['n_val']} / {rep['n_test']}")
    if rep["n_test"] < 20:
        st.warning(f"Only {rep['n_test']} loops were held out for testing: these F1 scores "
                   "are a rough guide. Train on more loops for numbers you can trust.")
    fig = go.Figure()
    fig.add_trace(go.Bar(x=lm["tag"], y=lm["f1_calibrated"], name="held-out F1",
                         marker_color="#2ec4b6"))
    fig.add_trace(go.Bar(x=lm["tag"], y=lm["prevalence"], name="prevalence",
                         marker_color="#7aa6c2"))
    fig.add_trace(go.Bar(x=lm["tag"], y=lm["majority_baseline"], name="majority baseline F1",
                         marker_color="#888"))
    fig.update_layout(barmode="group", height=340, margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(range=[0, 1.05]), legend=dict(orientation="h", y=1.12))
    st.markdown("**Per tag: held-out F1, prevalence and the majority baseline**")
    st.plotly_chart(fig, key="tg_f1")
    thr = pd.DataFrame({"tag": list(rep["thresholds"]),
                        "threshold": list(rep["thresholds"].values())})
    ex = pd.DataFrame({"tag": list(rep["excluded_features"]),
                       "features hidden from it (leakage)":
                           [", ".join(v) or "none" for v in rep["excluded_features"].values()]})
    st.dataframe(lm.merge(thr, on="tag", how="left").merge(ex, on="tag", how="left"),
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.2f")
                                for c in ("f1_default", "f1_calibrated", "prevalence",
                                          "majority_baseline", "threshold")})
    dropped = rep.get("dropped_labels", {})
    if dropped.get("rare") or dropped.get("constant"):
        st.caption(f"Dropped as too rare: {', '.join(dropped.get('rare', [])) or 'none'} · "
                   f"same on every loop: {', '.join(dropped.get('constant', [])) or 'none'}")
    from engine.tags import save_bundle

    buf = Path(ls.state.workspace_root()) / "exports" / "tag_model.joblib"
    buf.parent.mkdir(parents=True, exist_ok=True)
    save_bundle(res.bundle, buf)
    d1, d2 = st.columns(2)
    d1.download_button("Download the model", buf.read_bytes(), file_name="tag_model.joblib",
                       icon=":material/download:", key="tg_dl_model")
    d2.download_button("Download the report (JSON)",
                       json.dumps(rep, indent=2, default=str), file_name="tag_report.json",
                       mime="application/json", icon=":material/download:", key="tg_dl_report")

st.subheader("Predicted tags")
model_note = "your trained model" if res is not None else "the shipped instrument-role model"
if len(files) == 0:
    st.caption("No loops to tag yet.")
    st.stop()
if st.button(f"Tag these {len(files)} loops with {model_note}", key="tg_predict"):
    from engine.tags import classify_files

    bar = Progress("Tagging")
    try:
        df, failures = classify_files(files, res.bundle if res is not None else None,
                                      cache_dir=_cache_dir(), progress=bar)
        bar.done(f"Tagged {len(df)} loops")
        label_of = dict(zip(table["file"].astype(str), table["label"].astype(str)))
        df.insert(1, "loop", [label_of.get(f, Path(f).name) for f in df["file"]])
        df = df.rename(columns={"predicted_tags": "tags"})
        st.session_state["tags_predictions"] = df
        for f, m in failures:
            st.warning(f"{Path(f).name}: {m}")
    except (LoopLabError, ValueError, OSError) as exc:
        bar.done("Tagging failed", ok=False)
        st.error(str(exc))
pred = st.session_state.get("tags_predictions")
if pred is not None and len(pred):
    all_tags = sorted({t for s in pred["tags"] for t in str(s).split(",") if t})
    want = st.multiselect("Show loops tagged", all_tags, key="tg_filter")
    shown = pred if not want else pred[pred["tags"].map(
        lambda s: set(want) <= set(str(s).split(",")))]
    st.dataframe(shown.drop(columns=["file"]), hide_index=True, width="stretch",
                 column_config={c: st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                   format="%.2f")
                                for c in shown.columns if c.startswith("prob_")})
    st.caption(f"{len(shown)} of {len(pred)} loops. The library map can colour loops by "
               "these tags.")
    st.download_button("Download predictions (CSV)", shown.to_csv(index=False),
                       file_name="tag_predictions.csv", mime="text/csv", key="tg_dl_pred")
