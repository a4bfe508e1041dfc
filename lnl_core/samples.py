"""Per-sample results out of a run: what each training sample's given label was, what the
networks predict, how likely the method thinks the given label is clean, and whether it
flags the sample as noisy.

A run directory gets ``samples.csv`` and ``samples.npz`` at the end of the run (and, on
request, ``samples/epoch-NNNN.csv`` / ``.npz`` after every epoch with a selection). Columns:

* ``index`` (row of the training set), ``file`` (own folder data only, relative path);
* ``given_label``, ``given_class``: the label the run trained with;
* ``predicted_label``, ``predicted_class``: argmax of the evaluated networks' mean logits
  on the un-augmented image (the networks and the rule behind the test accuracy);
* ``clean_prob``: the method's probability that the given label is right, averaged over its
  networks, and ``clean_prob_net1``, ``clean_prob_net2`` per network where there are two: the
  selection the last epoch trained with, made at its start (the prediction comes after it);
* ``flagged_noisy``: ``clean_prob <= threshold`` at the method's threshold;
* ``refurbished_label`` (flywheel): the label the method trains on instead;
* ``clean_label``, ``label_is_wrong``: only when the correct labels are known.

The ``.npz`` holds the same columns and ``pred_probs`` (N, K), the softmax of the mean logits,
and ``classes``: ``cleanlab.filter.find_label_issues(z["given_label"], z["pred_probs"])``
takes it as it is, and ``pandas.read_csv`` reads the CSV.
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .engine import predict_logits
from .errors import LNLError
from .trainers import METHODS, get_method

SAMPLES_CSV = "samples.csv"
SAMPLES_NPZ = "samples.npz"
EPOCH_DIR = "samples"


def exporting_methods() -> list[str]:
    return sorted(name for name, m in METHODS.items() if m.per_sample is not None)


def unavailable(method: str, hp: Any, epochs_done: int) -> str | None:
    """Why a run of ``method`` has no per-sample results after ``epochs_done`` epochs, or None."""
    m = get_method(method)
    if m.per_sample is None:
        return (
            f"{method} keeps no per-sample clean probabilities or refurbished labels (it changes the "
            f"loss, not the data), so there is nothing to export; methods that do: {', '.join(exporting_methods())}"
        )
    warmup = getattr(hp, "warmup_epochs", 0)
    if epochs_done <= warmup:
        return (
            f"{method} makes its first selection after its {warmup} warm-up epochs; the run has {epochs_done}"
        )
    return None


def sample_table(run, state: dict, *, classes, files=None, clean=None, index=None) -> dict[str, Any]:
    """The per-sample table of a :class:`~lnl_core.engine.Run` after its last epoch, from the
    method's per-sample ``state``. ``index`` gives each training row's index in the data set
    it came from (default: the row itself; a run on a subset passes the subset's indices). Raises :class:`LNLError` with the reason when the method
    has none (see :func:`unavailable`)."""
    cfg = run.config
    epochs_done = len(run.history)
    reason = unavailable(cfg.method, cfg.hp, epochs_done)
    info = None if reason else get_method(cfg.method).per_sample(cfg.hp, state, epochs_done)
    if info is None:
        raise LNLError(reason or f"{cfg.method} has made no selection yet")
    models = run.eval_models
    if not models:
        raise LNLError(
            "no epoch ran in this session (a finished run resumed), so there are no networks to ask"
        )
    logits = predict_logits(models, run.train, batch_size=cfg.eval_batch_size) / len(models)  # (N, K) fp32
    probs = logits.softmax(1)
    rows = info.clean_prob.detach().float().reshape(-1, len(run.train))  # (M, N)
    clean_prob = rows.mean(0)
    given = run.labels.cpu().numpy()
    pred = probs.argmax(1).cpu().numpy()
    names = np.asarray(classes, dtype=str)
    rows_index = np.arange(len(given)) if index is None else np.asarray(index)
    cols: dict[str, np.ndarray] = {"index": rows_index.astype(np.int64)}
    if files is not None:
        cols["file"] = np.asarray(files, dtype=str)
    cols["given_label"] = given.astype(np.int64)
    cols["given_class"] = names[given]
    cols["predicted_label"] = pred.astype(np.int64)
    cols["predicted_class"] = names[pred]
    cols["clean_prob"] = clean_prob.cpu().numpy().astype(np.float64)
    cols["flagged_noisy"] = cols["clean_prob"] <= info.threshold
    if rows.shape[0] > 1:
        for i in range(rows.shape[0]):
            cols[f"clean_prob_net{i + 1}"] = rows[i].cpu().numpy().astype(np.float64)
    if info.refurbished is not None:
        ref = info.refurbished.cpu().numpy().astype(np.int64)
        cols["refurbished_label"] = ref
        cols["refurbished_class"] = names[ref]
    if clean is not None:
        cols["clean_label"] = np.asarray(clean, dtype=np.int64)
        cols["label_is_wrong"] = cols["clean_label"] != given
    return {
        "columns": cols,
        "pred_probs": probs.cpu().numpy().astype(np.float32),
        "classes": names,
        "method": cfg.method,
        "threshold": float(info.threshold),
        "epoch": epochs_done,
        "meaning": info.meaning,
    }


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def write(table: dict[str, Any], csv_path: Path, npz_path: Path) -> None:
    """Write the table as CSV and as ``.npz`` (each through a temporary file and a rename)."""
    cols = table["columns"]
    n = len(cols["index"])
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        values = [cols[c].tolist() for c in cols]
        for i in range(n):
            writer.writerow([_cell(v[i]) for v in values])
    os.replace(tmp, csv_path)
    arrays = {
        **cols, "pred_probs": table["pred_probs"], "classes": table["classes"],
        "method": np.array(table["method"]), "threshold": np.float64(table["threshold"]),
        "epoch": np.int64(table["epoch"]),
    }  # fmt: skip
    tmp = npz_path.with_name(npz_path.name + ".tmp")
    # np.savez's own parameter is called "file", like the column: write the archive as it does
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    os.replace(tmp, npz_path)


def summary(table: dict[str, Any]) -> dict[str, Any]:
    """What ``result.json`` says of the export."""
    cols = table["columns"]
    record = {
        "written": True,
        "files": [SAMPLES_CSV, SAMPLES_NPZ],
        "method": table["method"],
        "epoch": table["epoch"],
        "threshold": table["threshold"],
        "clean_prob": table["meaning"],
        "flagged_noisy": int(cols["flagged_noisy"].sum()),
        "samples": len(cols["index"]),
    }
    if "label_is_wrong" in cols:
        flagged, wrong = cols["flagged_noisy"], cols["label_is_wrong"]
        record["flagged_and_wrong"] = int((flagged & wrong).sum())
        record["wrong"] = int(wrong.sum())
    return record


def epoch_paths(run_dir: Path, epoch: int) -> tuple[Path, Path]:
    d = run_dir / EPOCH_DIR
    return d / f"epoch-{epoch:04d}.csv", d / f"epoch-{epoch:04d}.npz"


# --------------------------------------------------------------------------- reading


def read(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``samples.csv`` of a run directory; if there is none, an :class:`LNLError`
    that says why (from ``result.json``)."""
    import json

    run_dir = Path(run_dir)
    path = run_dir / SAMPLES_CSV
    if not path.is_file():
        reason = None
        try:
            reason = json.loads((run_dir / "result.json").read_text()).get("samples", {}).get("reason")
        except (OSError, ValueError):
            pass
        if reason:
            raise LNLError(f"no per-sample results in {run_dir}: {reason}")
        if not run_dir.is_dir():
            raise LNLError(f"{run_dir} is not a run directory")
        raise LNLError(f"no {SAMPLES_CSV} in {run_dir}: the run has not finished (continue it with --resume)")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def most_suspicious(rows: list[dict[str, str]], top: int) -> list[dict[str, str]]:
    """The ``top`` rows with the lowest clean probability; among equal ones (a GMM's
    posterior is often exactly 0), rows whose prediction disagrees with the given label come
    first, then index order."""
    if top < 1:
        raise LNLError(f"--top must be at least 1, got {top}")
    return sorted(
        rows,
        key=lambda r: (float(r["clean_prob"]), r["predicted_label"] == r["given_label"], int(r["index"])),
    )[:top]


def format_suspicious(rows: list[dict[str, str]], top: int) -> str:
    """A plain-text table of the most suspicious samples and one line on the whole run."""
    chosen = most_suspicious(rows, top)
    name = "file" if "file" in rows[0] else "index"
    width = max([len(name)] + [len(r[name]) for r in chosen])
    cls_w = max(
        [len("given"), len("predicted")]
        + [len(r[k]) for r in chosen for k in ("given_class", "predicted_class")]
    )
    head = f"{'rank':>4}  {name:<{width}}  {'given':<{cls_w}}  {'predicted':<{cls_w}}  {'clean_prob':>10}  flagged"
    wrong = "label_is_wrong" in rows[0]
    lines = [head + ("  wrong" if wrong else ""), "-" * (len(head) + (7 if wrong else 0))]
    for rank, r in enumerate(chosen, 1):
        line = (
            f"{rank:>4}  {r[name]:<{width}}  {r['given_class']:<{cls_w}}  {r['predicted_class']:<{cls_w}}  "
            f"{float(r['clean_prob']):>10.3g}  {'yes' if r['flagged_noisy'] == 'True' else 'no':<7}"
        )
        if wrong:
            line += f"  {'yes' if r['label_is_wrong'] == 'True' else 'no'}"
        lines.append(line.rstrip())
    flagged = sum(r["flagged_noisy"] == "True" for r in rows)
    lines.append(f"{flagged} of {len(rows)} samples flagged noisy; lowest clean probability first")
    return "\n".join(lines)
