"""Your own data in (folders, arrays), per-sample results and metrics out (issue #17)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lnl_core import owndata
from lnl_core.cli import main
from lnl_core.engine import uses_truth
from lnl_core.errors import LNLError
from lnl_core.experiment import build_config, run_own
from lnl_core.models import build_model
from lnl_core.trainers import METHODS

CLASSES = ("cat", "dog", "emu")


def _images(n, side, channels, seed):
    g = np.random.default_rng(seed)
    shape = (n, side, side) if channels == 1 else (n, side, side, channels)
    return g.integers(0, 256, shape, dtype=np.uint8)


def make_folder(
    root: Path, *, per_class=4, side=12, channels=1, classes=CLASSES, seed=0
) -> dict[str, np.ndarray]:
    """PNG files root/<class>/<name>.png; returns relative name -> pixels (H, W[, C])."""
    written = {}
    for c_i, c in enumerate(classes):
        for j, arr in enumerate(_images(per_class, side, channels, seed + c_i)):
            rel = f"{c}/sub/{j}.png" if j == 0 else f"{c}/{j}.png"  # one image one level deeper
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / rel)
            written[rel] = arr
    return written


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------- entry points


def test_folder_reads_every_image_once_with_its_folder_label(tmp_path):
    written = make_folder(tmp_path / "f")
    (tmp_path / "f" / "cat" / "notes.txt").write_text("not an image")  # ignored, as ImageFolder does
    own = owndata.from_folder(tmp_path / "f")
    assert own.classes == CLASSES and own.image_shape == (1, 12, 12) and own.clean is None
    assert len(own.files) == len(written) == len(own.train)
    for i, rel in enumerate(own.files):
        assert torch.equal(own.train.images[i, 0], torch.from_numpy(written[rel]))
        assert own.train.labels[i] == CLASSES.index(rel.split("/")[0])
    x = np.stack([written[f] for f in own.files]).astype(np.float64) / 255
    assert own.train.mean[0] == pytest.approx(x.mean()) and own.train.std[0] == pytest.approx(x.std())


def test_folder_colour_mixed_sizes_with_resize(tmp_path):
    make_folder(tmp_path / "f", side=20, channels=3)
    Image.fromarray(_images(1, 30, 1, 9)[0][:, :24]).save(tmp_path / "f" / "dog" / "odd.png")  # grey, 30 x 24
    with pytest.raises(LNLError, match="2 different sizes.*resize=SIDE"):
        owndata.from_folder(tmp_path / "f")
    own = owndata.from_folder(tmp_path / "f", resize=16)
    assert own.image_shape == (3, 16, 16)  # one RGB image among them: every image in colour
    odd = own.files.index("dog/odd.png")
    assert (own.train.images[odd, 0] == own.train.images[odd, 1]).all()  # grey stays grey in RGB


def test_arrays_in_both_layouts_with_clean_labels_and_a_test_split():
    x = _images(12, 8, 1, 0)
    y = np.arange(12) % 3
    a = owndata.from_arrays(x, y)
    b = owndata.from_arrays(torch.from_numpy(x[:, None]), torch.from_numpy(y), classes=CLASSES)
    assert a.image_shape == b.image_shape == (1, 8, 8) and torch.equal(a.train.images, b.train.images)
    assert a.classes == ("0", "1", "2") and b.classes == CLASSES
    c = owndata.from_arrays(
        x, y, clean_labels=(y + 1) % 3, test_images=x[:4], test_labels=y[:4], num_classes=4
    )
    assert c.num_classes == 4 and len(c.test) == 4 and (c.clean == (y + 1) % 3).all()
    same = owndata.from_arrays(torch.from_numpy(x[:, None]), torch.from_numpy(y))  # the other layout
    assert a.digest() == same.digest() and len({a.digest(), b.digest(), c.digest()}) == 3  # names, truth


# --------------------------------------------------------------------------- bad input


def _bad_folder(kind: str, root: Path) -> list[str]:
    """A folder with one problem, and the extra CLI arguments that trip over it."""
    f = root / "f"
    if kind == "empty":
        f.mkdir()
    elif kind == "no images":
        for c in CLASSES:
            (f / c).mkdir(parents=True)
        (f / "cat" / "readme.txt").write_text("hello")
    elif kind == "empty class":
        make_folder(f)
        (f / "fox").mkdir()
    elif kind == "unreadable":
        make_folder(f)
        (f / "dog" / "broken.png").write_bytes(b"this is not a png")
    elif kind == "truncated":
        make_folder(f, side=64)
        data = (f / "dog" / "1.png").read_bytes()
        (f / "dog" / "1.png").write_bytes(data[: len(data) // 2])
    elif kind == "mixed sizes":
        make_folder(f)
        Image.fromarray(_images(1, 14, 1, 5)[0]).save(f / "emu" / "big.png")
    elif kind == "not square":
        make_folder(f)
        for p in f.rglob("*.png"):
            Image.open(p).crop((0, 0, 12, 10)).save(p)
    elif kind == "model too small":
        make_folder(f, side=48)
        return ["--set", "model=preact_resnet18"]
    elif kind == "test class unknown":
        make_folder(f)
        make_folder(root / "t", classes=("cat", "yak"))
        return ["--test-folder", str(root / "t")]
    elif kind == "clean labels incomplete":
        make_folder(f)
        (root / "clean.csv").write_text("file,label\ncat/1.png,dog\n")
        return ["--clean-labels", str(root / "clean.csv")]
    elif kind == "clean labels missing":
        make_folder(f)
        return ["--clean-labels", str(root / "typo.csv")]
    elif kind == "test folder missing":
        make_folder(f)
        return ["--test-folder", str(root / "nowhere")]
    elif kind == "one class":
        make_folder(f, classes=("cat",))
    elif kind == "floating point":
        make_folder(f)
        Image.fromarray(np.zeros((12, 12), dtype=np.float32)).save(f / "dog" / "depth.tif")
    elif kind == "every epoch without out":
        make_folder(f)
        return ["--export-every-epoch"]
    elif kind == "full profile, 48x48":
        make_folder(f, side=48)
        return ["--profile", "full"]
    return []


BAD_FOLDERS = {
    "empty": "no class sub-folders",
    "no images": "holds no images",
    "empty class": "class folders without images in .*: fox",
    "unreadable": r"1 of 13 files .* cannot be read as images: dog/broken.png",
    "truncated": "fail to decode: dog/1.png",
    "mixed sizes": r"2 different sizes \(12x12: 12, 14x14: 1; e.g. emu/big.png\); pass resize=SIDE",
    "not square": "are 12x10; the models take square images",
    "model too small": "preact_resnet18 takes 32x32 only.*not 48x48.*preact_resnet18_adaptive",
    "test class unknown": "classes that training does not: yak",
    "clean labels incomplete": "11 training images have none",
    "clean labels missing": "cannot read clean labels from .*typo.csv",
    "test folder missing": "test folder .*nowhere does not exist",
    "one class": "has one class .cat.; it needs at least 2",
    "floating point": r"1 images in .* are floating-point \(mode F, e.g. dog/depth.tif\)",
    "every epoch without out": "--export-every-epoch writes into the run directory: give --out DIR",
    "full profile, 48x48": "preact_resnet18 takes 32x32 only.*not 48x48",
}


@pytest.mark.parametrize("kind", BAD_FOLDERS)
def test_bad_folder_is_one_message_and_nothing_written(kind, tmp_path, capsys, monkeypatch):
    """Each bad folder gets its one-line message, nothing is written, and every problem that
    the file names and headers show is found before a single image is decoded."""
    extra = _bad_folder(kind, tmp_path)
    before = _listing(tmp_path)
    out = tmp_path / "runs" / "mine"
    if kind != "truncated":  # the one problem that only decoding finds

        def no_decoding(*args, **kwargs):
            raise AssertionError("an image was decoded before the checks")

        monkeypatch.setattr(owndata, "_decode", no_decoding)
    if kind == "every epoch without out":
        extra, out = extra + ["--quiet"], None
    where = [] if out is None else ["--out", str(out)]
    code = main(["run", "dividemix", "--folder", str(tmp_path / "f"), *where, "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    import re

    assert re.search(BAD_FOLDERS[kind], err), err
    assert _listing(tmp_path) == before and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "images,labels,options,message",
    [
        (
            _images(6, 8, 1, 0),
            [0, 1, 2, 3, 1, 0],
            {"classes": CLASSES},
            r"labels\[3\] = 3, but there are 3 classes",
        ),
        (_images(6, 8, 1, 0), [0, 1, -1, 0, 1, 0], {}, r"labels\[2\] = -1"),
        (_images(6, 8, 1, 0), [0, 1, 0], {}, "6 images but 3 labels"),
        (_images(6, 8, 1, 0), [0.0, 1, 0, 1, 0, 1], {}, "must be integers"),
        (_images(6, 8, 1, 0) / 255.0, [0, 1, 0, 1, 0, 1], {}, "must be uint8"),
        (_images(6, 8, 3, 0), [0, 1, 0, 1, 0, 1], {}, "channels-last"),
        (_images(6, 8, 1, 0)[:, :, :6], [0, 1, 0, 1, 0, 1], {}, "8x6; the models take square images"),
        (
            _images(6, 8, 1, 0),
            [0, 1, 0, 1, 0, 1],
            {"clean_labels": [0, 1, 0, 1, 0, 7]},
            r"clean_labels\[5\] = 7",
        ),
        (_images(6, 8, 1, 0), [0, 0, 0, 0, 0, 0], {}, "at least 2 classes"),
    ],
)
def test_bad_arrays_are_refused(images, labels, options, message):
    with pytest.raises(LNLError, match=message):
        owndata.from_arrays(images, np.asarray(labels), **options)


def test_data_too_big_for_the_device_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import lnl_core.experiment as experiment

    own = owndata.from_arrays(_images(30, 8, 1, 0), np.arange(30) % 3)
    monkeypatch.setattr(owndata, "free_memory_bytes", lambda device="cpu": 1000)
    monkeypatch.setattr(experiment, "choose_device", lambda device: torch.device("meta"))  # a small GPU
    with pytest.raises(
        LNLError, match=r"0.00 GiB as uint8, more than 50% of the 0.00 GiB free on meta.*resize"
    ):
        run_own("ce", own, out=tmp_path / "run", quiet=True)
    make_folder(tmp_path / "f")
    with pytest.raises(LNLError, match="the images in .* take"):
        owndata.from_folder(tmp_path / "f")
    assert not (tmp_path / "run").exists()


def test_a_folder_that_fits_host_memory_is_not_counted_twice_on_the_cpu(tmp_path, monkeypatch):
    make_folder(tmp_path / "f")  # 36 images of 12x12: 5184 bytes
    monkeypatch.setattr(owndata, "free_memory_bytes", lambda device="cpu": 12000)  # 43% of it
    own = owndata.from_folder(tmp_path / "f")
    res = run_own("ce", own, quiet=True, device="cpu", overrides={"epochs": 1})
    assert res.summary["epochs_done"] == 1


def test_given_noise_is_for_own_data_only():
    with pytest.raises(LNLError, match="noise 'given' means the labels that come with your own data"):
        from lnl_core.noise import make

        make("given", np.zeros(3, dtype=np.int64), 0.0, 2, seed=0)
    own = owndata.from_arrays(_images(6, 8, 1, 0), np.arange(6) % 2)
    with pytest.raises(LNLError, match="cannot be used on your own data"):
        run_own("ce", own, noise="asymmetric", rate=0.2)
    assert build_config("ce").dataset == "fashion_mnist"
    with pytest.raises(LNLError, match="noise 'given' keeps the labels of your own data"):
        build_config("ce", noise="given", rate=0.0)
    known = owndata.from_arrays(_images(6, 8, 1, 0), np.arange(6) % 2, clean_labels=np.arange(6) % 2)
    with pytest.raises(LNLError, match="clean labels supplied too would be ignored"):
        run_own("ce", known, noise="symmetric", rate=0.2)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    g = np.random.default_rng(0)
    written = {}
    for c in ("a", "b"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for j in range(3):
            arr = g.integers(0, 65536, (8, 8)).astype(np.uint16)
            Image.fromarray(arr).save(tmp_path / "f" / c / f"{j}.png")
            written[f"{c}/{j}.png"] = arr
    assert Image.open(tmp_path / "f" / "a" / "0.png").mode.startswith("I")
    own = owndata.from_folder(tmp_path / "f")
    assert own.image_shape == (1, 8, 8)
    for i, rel in enumerate(own.files):  # 0-65535 onto 0-255, rounded to the nearest
        expected = np.floor(written[rel].astype(np.float64) / 257 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(own.train.images[i, 0].numpy(), expected)


# --------------------------------------------------------------------------- models and sizes


def test_adaptive_preact_takes_any_side_and_equals_the_fixed_pool_at_32():
    torch.manual_seed(0)
    fixed = build_model("preact_resnet18", num_classes=3, in_channels=3, image_size=32).eval()
    adaptive = build_model("preact_resnet18_adaptive", num_classes=3, in_channels=3, image_size=48).eval()
    adaptive.load_state_dict(fixed.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(adaptive(x), fixed(x), rtol=1e-5, atol=1e-6)
        assert adaptive(torch.randn(2, 3, 48, 48)).shape == (2, 3)
    with pytest.raises(LNLError, match="cnn8 takes sides divisible by 8.*not 20x20"):
        build_model("cnn8", num_classes=3, in_channels=3, image_size=20)


def test_a_48x48_folder_trains_with_a_network_that_takes_it(tmp_path, capsys):
    make_folder(tmp_path / "f", side=48, channels=3, per_class=6)
    out = tmp_path / "run"
    argv = ["run", "dividemix", "--folder", str(tmp_path / "f"), "--out", str(out), "--quiet"]
    sets = ["epochs=2", "warmup_epochs=1", "batch_size=6", "model=preact_resnet18_adaptive"]
    code = main(argv + [a for s in sets for a in ("--set", s)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert json.loads((out / "data.json").read_text())["image_shape"] == [3, 48, 48]
    assert "wrong labels: unknown" in text and "no test split" in text
    with open(out / "samples.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 18
    assert main(["table", str(out)]) == 0  # no test split, truth unknown: dashes, not a crash
    assert capsys.readouterr().out.splitlines()[2].split()[3:7] == ["-", "-", "-", "-"]


# --------------------------------------------------------------------------- per-sample results out


def _toy(n=60, seed=0, k=3):
    """Learnable 8x8 images (class = bright band), 20% given labels wrong, a test split."""
    g = np.random.default_rng(seed)
    truth = np.arange(n) % k
    x = g.integers(0, 60, (n, 8, 8), dtype=np.uint8)
    for c in range(k):
        x[truth == c, :, 2 * c : 2 * c + 2] += 150
    given = truth.copy()
    flip = g.choice(n, n // 5, replace=False)
    given[flip] = (truth[flip] + 1) % k
    return x, given, truth


def test_export_rows_and_columns_match_the_run_state(tmp_path):
    import cleanlab.filter
    import pandas as pd

    x, given, truth = _toy()
    own = owndata.from_arrays(x, given, clean_labels=truth, classes=CLASSES, test_images=x, test_labels=truth)
    res = run_own(
        "dividemix", own, out=tmp_path / "run", quiet=True, overrides={"epochs": 3, "warmup_epochs": 1}
    )
    df = pd.read_csv(tmp_path / "run" / "samples.csv")
    cols = [
        "index",
        "given_label",
        "given_class",
        "predicted_label",
        "predicted_class",
        "clean_prob",
        "flagged_noisy",
    ]
    assert list(df.columns) == cols + ["clean_prob_net1", "clean_prob_net2", "clean_label", "label_is_wrong"]
    assert (df["index"] == np.arange(60)).all() and (df["given_label"] == given).all()
    assert (df["given_class"] == np.array(CLASSES)[given]).all()
    # the state the run ended with, computed here independently of lnl_core.samples
    prob = res.output.state["clean_prob"].numpy()  # (2, N)
    np.testing.assert_array_equal(df[["clean_prob_net1", "clean_prob_net2"]].to_numpy().T, prob)
    np.testing.assert_allclose(df["clean_prob"], prob.mean(0), rtol=0, atol=1e-7)
    assert (df["flagged_noisy"] == ~(prob.mean(0) > 0.5)).all()
    xs = (torch.from_numpy(x[:, None]).float() / 255 - own.train.mean[0]) / own.train.std[0]
    nets = [res.output.models["net1"].eval(), res.output.models["net2"].eval()]
    with torch.no_grad():
        pred = sum(net(xs) for net in nets).argmax(1).numpy()
    assert (df["predicted_label"] == pred).all()
    assert (df["label_is_wrong"] == (given != truth)).all() and (df["clean_label"] == truth).all()
    z = np.load(tmp_path / "run" / "samples.npz")
    for c in df.columns:
        if df[c].dtype.kind == "f":
            np.testing.assert_array_equal(z[c], df[c].to_numpy())
        else:
            assert (z[c] == df[c].to_numpy()).all(), c
    assert z["pred_probs"].shape == (60, 3) and (z["pred_probs"].argmax(1) == pred).all()
    issues = cleanlab.filter.find_label_issues(
        z["given_label"], z["pred_probs"]
    )  # cleanlab reads it as it is
    assert issues.shape == (60,) and issues.dtype == bool
    record = json.loads((tmp_path / "run" / "result.json").read_text())["samples"]
    assert record["flagged_noisy"] == int(df["flagged_noisy"].sum()) and record["wrong"] == int(
        (given != truth).sum()
    )
    # metrics.csv: one row per epoch, the history's values
    m = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert len(m) == 3 and list(m["epoch"]) == [1, 2, 3]
    for key in ("test_acc", "train_loss", "selection_auc", "labeled_fraction"):
        hist = np.array([h.get(key, np.nan) for h in res.history], dtype=float)
        np.testing.assert_array_equal(m[key].to_numpy(), hist)
    assert np.isnan(m["selection_auc"][0])  # no selection during warm-up: an empty cell


def test_every_epoch_export_and_suspicious(tmp_path, capsys):
    x, given, truth = _toy()
    own = owndata.from_arrays(x, given, clean_labels=truth)
    run = tmp_path / "run"
    run_own(
        "pmnar",
        own,
        out=run,
        quiet=True,
        overrides={"epochs": 3, "warmup_epochs": 1},
        export_every_epoch=True,
    )
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch-0002.csv", "epoch-0002.npz", "epoch-0003.csv", "epoch-0003.npz",
    ]  # fmt: skip
    assert (run / "samples" / "epoch-0003.csv").read_text() == (run / "samples.csv").read_text()
    assert main(["suspicious", str(run), "--top", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    with open(run / "samples.csv") as fh:
        rows = list(csv.DictReader(fh))
    # lowest clean probability first; among ties, a prediction that disagrees with the given
    # label first, then the index
    rows.sort(key=lambda r: int(r["index"]))
    rows.sort(key=lambda r: r["predicted_class"] == r["given_class"])
    rows.sort(key=lambda r: float(r["clean_prob"]))
    assert [line.split()[1] for line in lines[2:6]] == [r["index"] for r in rows[:4]]
    assert lines[-1].startswith(f"{sum(r['flagged_noisy'] == 'True' for r in rows)} of 60 samples flagged")
    # a run directory with per-epoch exports is replaced on --overwrite, and refused with a foreign file in it
    run_own("pmnar", own, out=run, quiet=True, overrides={"epochs": 1, "warmup_epochs": 0}, overwrite=True)
    assert not (run / "samples").exists()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(LNLError, match="refusing to overwrite"):
        run_own("pmnar", own, out=run, quiet=True, overwrite=True)


def test_a_subset_exports_the_original_index_and_file(tmp_path):
    make_folder(tmp_path / "f", per_class=6)
    own = owndata.from_folder(tmp_path / "f")
    overrides = {"epochs": 2, "warmup_epochs": 1, "train_size": 9}
    run_own("dividemix", own, out=tmp_path / "run", quiet=True, overrides=overrides)
    with open(tmp_path / "run" / "samples.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and len({r["index"] for r in rows}) == 9
    assert all(own.files[int(r["index"])] == r["file"] for r in rows)
    assert all(int(own.train.labels[int(r["index"])]) == int(r["given_label"]) for r in rows)


def test_resume_needs_the_same_data(tmp_path):
    x, given, truth = _toy()
    own = owndata.from_arrays(x, given)
    run = tmp_path / "run"
    run_own("ce", own, out=run, quiet=True, overrides={"epochs": 2}, stop_after=1)
    other = owndata.from_arrays(x[::-1].copy(), given)
    with pytest.raises(LNLError, match="started on other data"):
        run_own("ce", other, out=run, quiet=True, overrides={"epochs": 2}, resume=True)
    with_truth = owndata.from_arrays(x, given, clean_labels=truth)  # the same images, labels known now
    with pytest.raises(LNLError, match="started on other data"):
        run_own("ce", with_truth, out=run, quiet=True, overrides={"epochs": 2}, resume=True)
    res = run_own("ce", own, out=run, quiet=True, overrides={"epochs": 2}, resume=True)
    assert res.summary["epochs_done"] == 2 and (run / "result.json").is_file()


def _overrides(name):
    hp = {f for f in METHODS[name].hparams.__dataclass_fields__}
    o = {"epochs": 2, "batch_size": 20}
    o.update({k: v for k, v in {"warmup_epochs": 1, "cpc_warmup_epochs": 0}.items() if k in hp})
    return o


@pytest.mark.parametrize("name", sorted(METHODS))
def test_truth_free_runs_train_the_same_and_record_nothing_from_the_truth(name, tmp_path, capsys):
    """Three runs on the same given labels: the truth unknown, and two different truths. The
    entries that differ between the two truths are exactly those the unknown run leaves out,
    and everything else (the training) is identical."""
    x, given, truth = _toy(40)
    other = truth.copy()
    other[:10] = (other[:10] + 1) % 3
    kw = dict(quiet=True, overrides=_overrides(name), device="cpu")
    unknown = run_own(
        name, owndata.from_arrays(x, given, test_images=x, test_labels=truth), out=tmp_path / "u", **kw
    )
    a = run_own(
        name, owndata.from_arrays(x, given, clean_labels=truth, test_images=x, test_labels=truth), **kw
    )
    b = run_own(
        name, owndata.from_arrays(x, given, clean_labels=other, test_images=x, test_labels=truth), **kw
    )
    for hu, ha, hb in zip(unknown.history, a.history, b.history):
        differ = {k for k in ha if ha[k] != hb[k] and not (ha[k] != ha[k] and hb[k] != hb[k])}  # NaN == NaN
        assert all(uses_truth(k) for k in differ), differ
        assert set(hu) == {k for k in ha if not uses_truth(k)}
        assert all(hu[k] == ha[k] or (hu[k] != hu[k] and ha[k] != ha[k]) for k in hu)
    assert unknown.summary["actual_noise_rate"] is None and a.summary["actual_noise_rate"] == 0.2
    # the export: rows for the methods that keep per-sample state, a reason for the others
    if METHODS[name].per_sample is not None:
        with open(tmp_path / "u" / "samples.csv") as fh:
            assert len(list(csv.DictReader(fh))) == 40
    else:
        assert not (tmp_path / "u" / "samples.csv").exists()
        reason = json.loads((tmp_path / "u" / "result.json").read_text())["samples"]["reason"]
        assert reason.startswith(f"{name} keeps no per-sample clean probabilities")
        assert main(["suspicious", str(tmp_path / "u")]) == 2
        assert "keeps no per-sample clean probabilities" in capsys.readouterr().err


def test_resuming_a_finished_or_interrupted_run_exports_the_same_samples(tmp_path, capsys):
    x, given, truth = _toy()
    own = owndata.from_arrays(x, given)
    run = tmp_path / "run"
    kw = dict(out=run, quiet=True, overrides={"epochs": 2, "warmup_epochs": 1}, device="cpu")
    run_own("pmnar", own, **kw)
    first = (run / "samples.csv").read_text()
    res = run_own("pmnar", own, resume=True, **kw)  # nothing left to train: the export again
    assert res.summary["samples"]["written"] and (run / "samples.csv").read_text() == first
    for name in ("result.json", "samples.csv", "samples.npz"):  # stopped after the last checkpoint
        (run / name).unlink()
    assert main(["suspicious", str(run)]) == 2 and "continue it with --resume" in capsys.readouterr().err
    run_own("pmnar", own, resume=True, **kw)
    assert (run / "samples.csv").read_text() == first


def test_a_subset_of_a_built_in_data_set_exports_its_original_index(tmp_path):
    from lnl_core import data
    from lnl_core.experiment import run_experiment

    overrides = {"epochs": 2, "warmup_epochs": 1, "train_size": 60, "test_size": 20}
    res = run_experiment(
        "pmnar", noise="symmetric", rate=0.2, out=tmp_path / "run", quiet=True, device="cpu",
        overrides=overrides,
    )  # fmt: skip
    full = data.load("fashion_mnist", "train")
    rows = data.stratified_subset(full.labels, 60, seed=res.config.subset_seed)
    z = np.load(tmp_path / "run" / "samples.npz")
    assert (z["index"] == rows).all() and (z["clean_label"] == full.labels.numpy()[rows]).all()


def test_suspicious_puts_disagreeing_predictions_first_among_ties():
    from lnl_core.samples import most_suspicious

    def row(i, p, given, pred):
        return {"index": str(i), "clean_prob": p, "given_label": given, "predicted_label": pred}

    rows = [
        row(0, "0.0", "1", "1"),
        row(1, "0.0", "1", "2"),
        row(2, "0.3", "0", "2"),
        row(3, "0.0", "0", "0"),
    ]
    assert [r["index"] for r in most_suspicious(rows, 4)] == ["1", "0", "3", "2"]


def test_cli_folder_with_test_split_and_clean_labels(tmp_path, capsys):
    written = make_folder(tmp_path / "f", per_class=6)
    make_folder(tmp_path / "t", per_class=2, seed=7)
    rows = ["file,label"] + [
        f"{rel},{'dog' if i == 0 else rel.split('/')[0]}" for i, rel in enumerate(sorted(written))
    ]
    # saved by a spreadsheet: a byte-order mark before the header
    (tmp_path / "clean.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    assert main(["run", "ce", "--folder", str(tmp_path / "f"), "--noise", "none", "--dry-run"]) == 0
    assert '"noise": "none"' in capsys.readouterr().out  # no --rate needed for no noise
    argv = ["run", "dividemix", "--folder", str(tmp_path / "f"), "--test-folder", str(tmp_path / "t")]
    argv += ["--clean-labels", str(tmp_path / "clean.csv"), "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv + ["--set", "epochs=2", "--set", "warmup_epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "wrong labels: 5.6%" in out and "last-epoch test acc" in out and "lnl suspicious" in out
    assert main(["suspicious", str(tmp_path / "r"), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "file", "given", "predicted", "clean_prob", "flagged", "wrong"]
    assert len(lines) == 2 + 3 + 1
    assert main(["run", "ce", "--resize", "16"]) == 2
    assert "--resize belong to your own data: give --folder too" in capsys.readouterr().err


def test_readme_shows_the_two_line_command_for_a_folder():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "lnl run dividemix --folder" in text and "lnl suspicious" in text
