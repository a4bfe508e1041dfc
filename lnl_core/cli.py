"""The ``lnl`` command: ``lnl list``, ``lnl run``, ``lnl table``, ``lnl bench``, ``lnl verify``,
``lnl suspicious``.

Bad input of any kind ends with one line on stderr and exit status 2, and nothing on disk
changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from . import data, models, noise
from .config import PROFILES
from .errors import LNLError
from .trainers import METHODS, get_method

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        raise LNLError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lnl", description="Learning with noisy labels: run the book's methods.")
    sub = p.add_subparsers(
        dest="command", metavar="{list,run,table,bench,verify,suspicious}", parser_class=_Parser
    )
    sub.required = True

    sub.add_parser("list", help="methods, data sets, noise kinds and profiles with their settings")

    r = sub.add_parser("run", help="train one method under one noise setting")
    r.add_argument("method", help="a method name from `lnl list`")
    r.add_argument("--dataset", help="a built-in data set (default fashion_mnist)")
    r.add_argument("--noise", help="noise kind (see `lnl list`; default symmetric, with --folder: given)")
    r.add_argument("--rate", type=float, help="nominal noise rate in [0, 1) (default 0.5; with --folder: 0)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--profile", default="reduced")
    r.add_argument("--out", help="run directory (result.json, checkpoints, noisy labels)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    r.add_argument("--resume", action="store_true", help="continue the run in --out")
    r.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting (repeatable); `lnl list` shows the keys")  # fmt: skip
    r.add_argument("--data-root", help="data directory (default $LNL_DATA or ./data)")
    r.add_argument("--download", action="store_true", help="download a missing data set with torchvision")
    r.add_argument("--dry-run", action="store_true", help="print the config and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal)")
    own = r.add_argument_group("your own data (instead of --dataset)")
    own.add_argument("--folder", help="training images in class sub-folders, FOLDER/<class>/<image>; "
                     "the folder names are the given (possibly wrong) labels")  # fmt: skip
    own.add_argument("--test-folder", help="test images with correct labels, in the same layout")
    own.add_argument("--clean-labels", metavar="CSV", help="correct labels of the training images, if known "
                     "(columns file, label), to measure how well the method finds the wrong ones")  # fmt: skip
    own.add_argument("--resize", type=int, metavar="SIDE", help="bring every image to SIDE x SIDE "
                     "(shorter side scaled, centre cropped); needed when sizes differ")  # fmt: skip
    own.add_argument("--like", help="take the method's settings for this built-in data set "
                     "(default: fashion_mnist under reduced, cifar10 under full, cifar100 above 10 classes)")  # fmt: skip
    own.add_argument("--export-every-epoch", action="store_true",
                     help="write the per-sample results after every epoch too (samples/epoch-NNNN.csv)")  # fmt: skip

    t = sub.add_parser("table", help="summarise run directories (their result.json) as a table")
    t.add_argument("runs", nargs="+", help="run directories")

    b = sub.add_parser(
        "bench", help="run (or continue) a grid of methods x noise settings x seeds; print its summary table"
    )
    b.add_argument("--out", help="grid directory (bench.json and one run directory per cell)")
    b.add_argument("--methods", nargs="+", metavar="M",
                   help="method names, or variants NAME+KEY=VALUE[+KEY=VALUE] (e.g. ce+augment=weak)")  # fmt: skip
    b.add_argument(
        "--noise", nargs="+", metavar="KIND:RATE", help="noise settings, e.g. symmetric:0.5 asymmetric:0.4"
    )
    b.add_argument("--seeds", nargs="+", type=int, metavar="S")
    b.add_argument("--profile", default="reduced")
    b.add_argument("--dataset", default="fashion_mnist")
    b.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting in every cell (repeatable)")  # fmt: skip
    b.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    b.add_argument("--threads", type=int, help="torch CPU threads (recorded; CPU results depend on it); "
                   "with --executor ray per cell, default 1")  # fmt: skip
    b.add_argument(
        "--keep-run-files", action="store_true", help="keep checkpoints and noisy labels of finished cells"
    )
    b.add_argument("--table", action="store_true", help="only print the summary table of the grid in --out")
    b.add_argument("--data-root", help="data directory (default $LNL_DATA or ./data)")
    b.add_argument("--download", action="store_true", help="download a missing data set with torchvision")
    b.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal)")
    b.add_argument("--status", metavar="DIR", help="only show which cells of the grid in DIR are done, "
                   "started (epochs done), failed (with the error) or pending")  # fmt: skip
    ray = b.add_argument_group("on a Ray cluster (pip install -e '.[ray]'; see benchmarks/README.md)")
    ray.add_argument("--executor", choices=("sequential", "ray"), default="sequential",
                     help="sequential (default): one cell after another in this process; ray: every cell "
                     "a Ray task, a failed cell reported while the others go on")  # fmt: skip
    ray.add_argument("--address", help="the Ray cluster: auto or HOST:PORT (default: start a local Ray "
                     "on this machine and stop it at the end)")  # fmt: skip
    ray.add_argument("--cells-at-once", type=int, metavar="N",
                     help="at most N cells running at a time (default: as many as the cluster takes)")  # fmt: skip
    ray.add_argument("--gpus-per-cell", type=float, metavar="G",
                     help="GPUs a cell asks for (default 1 if this machine sees CUDA, else 0: "
                     "give 1 when only the workers have GPUs)")  # fmt: skip

    v = sub.add_parser(
        "verify", help="re-run cells of a grid on the CPU: bit-identical histories on a CPU kind on record"
    )
    v.add_argument("out", help="grid directory")
    v.add_argument("--all", action="store_true", help="every finished cell (default: one cell per method)")
    v.add_argument(
        "--cells", nargs="+", metavar="CELL",
        help="these cells, as paths in the grid (METHOD/NOISE-RATE/seedK, e.g. dividemix/symmetric-0.50/seed0)",
    )  # fmt: skip
    v.add_argument("--data-root", help="data directory (default $LNL_DATA or ./data)")
    v.add_argument(
        "--record-replica", action="store_true",
        help="on a CPU kind other than the grid's, record the re-runs that pass the seed band in "
        "replicas.json, so that later runs on this kind compare bit for bit",
    )  # fmt: skip

    s = sub.add_parser(
        "suspicious", help="the samples a finished run trusts least (lowest clean probability)"
    )
    s.add_argument("run", help="run directory (its samples.csv)")
    s.add_argument("--top", type=int, default=20, help="how many samples (default 20)")
    return p


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LNLError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def cmd_list() -> None:
    print("Methods (lnl run METHOD; hyperparameters settable with --set KEY=VALUE):")
    for name, m in sorted(METHODS.items()):
        hps = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(m.hparams)) or "-"
        print(f"  {name:<13} {m.summary}  [{hps}]")
    print("\nDatasets:", ", ".join(data.DATASETS))
    print("  fashion_mnist offline (apt-get install dataset-fashion-mnist); CIFAR with --download")
    print("\nNoise kinds (--noise):")
    notes = {
        "symmetric": "DivideMix: the new label may be the true one (actual rate ~ rate (1 - 1/K))",
        "symmetric-exclusive": "the new label is one of the K-1 other classes",
        "asymmetric": "to a similar class; CIFAR-100: next class in the real superclass",
        "asymmetric-blocks": "CIFAR-100 only: next class in blocks of 5 consecutive indices (UNICON/PLReMix code)",
        "instance": "part-dependent, Xia et al. (2020)",
        "given": "your own data's labels as they are (lnl run METHOD --folder DIR)",
        "none": "no label changed",
    }
    for kind in noise.NOISE_KINDS:
        print(f"  {kind:<20} {notes.get(kind, '')}".rstrip())
    print("  asymmetric mappings:", ", ".join(noise.ASYMMETRIC_MAPPINGS))
    print("\nModels (--set model=NAME) and the square image sides they take:")
    for name in models.MODELS:
        print(f"  {name:<25} {models.INPUT_SIZES[name]}")
    print("\nProfiles (--profile; every key can be overridden with --set):")
    for prof in PROFILES.values():
        print(f"  {prof.name}: {prof.description}")
        print(f"    datasets: {', '.join(prof.datasets)}")
        for key, value in prof.settings.items():
            print(f"    {key} = {value}")


_OWN_ONLY = ("test_folder", "clean_labels", "resize", "like", "export_every_epoch")


def cmd_run(args: argparse.Namespace) -> None:
    from .experiment import build_config, build_own_config, run_config, run_experiment

    overrides = _parse_sets(args.sets)
    if args.folder is None:
        given = [f"--{k.replace('_', '-')}" for k in _OWN_ONLY if getattr(args, k) not in (None, False)]
        if given:
            raise LNLError(f"{', '.join(given)} belong to your own data: give --folder too")
        common = dict(
            dataset=args.dataset or "fashion_mnist", noise=args.noise or "symmetric",
            rate=0.5 if args.rate is None else args.rate, seed=args.seed, profile=args.profile,
        )  # fmt: skip
        if args.dry_run:
            cfg = build_config(args.method, overrides=overrides, **common)
            print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
            return
        result = run_experiment(
            args.method, **common, out=args.out, device=args.device, resume=args.resume,
            overwrite=args.overwrite, overrides=overrides, quiet=args.quiet,
            data_root=args.data_root, download=args.download,
        )  # fmt: skip
    else:
        from .experiment import check_run_dir, own_config
        from .models import check_input_size
        from .owndata import from_folder, inspect_folder

        if args.dataset or args.download or args.data_root:
            raise LNLError("--folder is the data: leave out --dataset, --download and --data-root")
        get_method(args.method)  # an unknown method fails before the folder is read
        if args.noise not in (None, "given", "none") and args.rate is None:
            raise LNLError(f"--noise {args.noise} on your own data needs --rate")
        if args.export_every_epoch and args.out is None:
            raise LNLError("--export-every-epoch writes into the run directory: give --out DIR")
        if args.out is not None and not args.dry_run:
            check_run_dir(Path(args.out), resume=args.resume, overwrite=args.overwrite)
        # the config (its model included) from the folder's headers, before decoding a single image
        info = inspect_folder(args.folder, resize=args.resize)
        if len(info.classes) >= 2:
            early = own_config(
                args.method, len(info.classes), noise=args.noise or "given", rate=args.rate or 0.0,
                seed=args.seed, profile=args.profile, like=args.like, overrides=overrides,
                clean_known=args.clean_labels is not None,
            )  # fmt: skip
            check_input_size(early.model, info.side)
        own = from_folder(
            args.folder, test=args.test_folder, clean_labels=args.clean_labels, resize=args.resize
        )
        cfg = build_own_config(
            args.method, own, noise=args.noise or "given", rate=args.rate or 0.0, seed=args.seed,
            profile=args.profile, like=args.like, overrides=overrides,
        )  # fmt: skip
        if args.dry_run:
            print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
            return
        result = run_config(
            cfg, own=own, out=args.out, device=args.device, resume=args.resume, overwrite=args.overwrite,
            quiet=args.quiet, export_every_epoch=args.export_every_epoch,
        )  # fmt: skip
    s = result.summary
    wrong = "unknown" if s["actual_noise_rate"] is None else f"{100 * s['actual_noise_rate']:.1f}%"
    data_name = s["data"]["name"] if "data" in s else s["dataset"]
    rate = "" if s["noise"] == "given" else f" {s['rate']:.2f}"
    print(
        f"{s['method']} on {data_name}, {s['noise']}{rate} (wrong labels: {wrong}), "
        f"seed {s['seed']}, {s['profile']} profile"
    )
    if s["final_test_acc"] is None:
        print(f"  no test split, so no test accuracy  {s['wall_time_s']:.1f} s on {s['device']}")
    else:
        print(
            f"  last-epoch test acc {s['final_test_acc']:.2f}%  mean of last 10 {s['mean_last10_test_acc']:.2f}%  "
            f"(test-set peak {s['best_test_acc']:.2f}%)  {s['wall_time_s']:.1f} s on {s['device']}"
        )
    if METHODS[args.method].selects_samples and s["history"] and "selection_auc" in s["history"][-1]:
        last = s["history"][-1]
        print(
            f"  selection at the last epoch: AUC {last['selection_auc']:.3f}, precision {last['precision']:.3f}, "
            f"recall {last['recall']:.3f}, F1 {last['f1']:.3f}, labelled {100 * last['labeled_fraction']:.1f}%"
        )
    samples = s.get("samples", {})
    if args.out:
        print(f"  wrote {Path(args.out) / 'result.json'}")
        if samples.get("written"):
            print(
                f"  per-sample results: {Path(args.out) / 'samples.csv'} ({samples['flagged_noisy']} of "
                f"{samples['samples']} flagged noisy); the most suspicious: lnl suspicious {args.out}"
            )
    if not samples.get("written") and samples.get("reason"):
        print(f"  no per-sample results: {samples['reason']}")


def cmd_table(args: argparse.Namespace) -> None:
    rows = []
    for run in args.runs:
        path = Path(run) / "result.json"
        try:
            rows.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise LNLError(f"cannot read {path}: {exc}") from None
    header = f"{'method':<10}{'noise':<14}{'rate':>6}{'actual':>8}{'last':>8}{'last10':>8}{'peak*':>8}{'time s':>8}"
    print(header)
    print("-" * len(header))

    def num(v, width, scale=1.0, suffix=""):  # own data: the wrong share or the accuracy may be unknown
        return (
            f"{'-':>{width}}"
            if v is None
            else f"{scale * v:>{width - len(suffix)}.{1 if suffix else 2}f}{suffix}"
        )

    for s in rows:
        print(
            f"{s['method']:<10}{s['noise']:<14}{s['rate']:>6.2f}{num(s['actual_noise_rate'], 8, 100, '%')}"
            f"{num(s['final_test_acc'], 8)}{num(s['mean_last10_test_acc'], 8)}{num(s['best_test_acc'], 8)}"
            f"{s['wall_time_s']:>8.1f}"
        )
    print("test accuracy in %; last = last epoch (the headline); *peak = best epoch on the test set")


_RAY_ONLY = ("address", "cells_at_once", "gpus_per_cell")


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    given = [args.methods, args.noise, args.seeds]
    if args.status is not None:
        if args.out or args.table or any(given) or args.sets:
            raise LNLError("--status shows the grid in its directory: give nothing else")
        _print_status(args.status)
        return 0
    if args.out is None:
        raise LNLError("lnl bench needs --out DIR (or --status DIR)")
    ray_only = [f"--{k.replace('_', '-')}" for k in _RAY_ONLY if getattr(args, k) is not None]
    if ray_only and args.executor != "ray":
        raise LNLError(f"{', '.join(ray_only)} belong to --executor ray")
    if args.table:
        if any(given) or args.sets:
            raise LNLError("--table prints an existing grid: give only --out")
        print(bench.format_table(bench.summary_rows(args.out)))
        return 0
    if any(given) and not all(given):
        raise LNLError("a new grid needs --methods, --noise and --seeds (or none of them, to continue --out)")
    grid = None
    if all(given):
        grid = bench.make_grid(
            methods=args.methods, settings=args.noise, seeds=args.seeds, profile=args.profile,
            dataset=args.dataset, overrides=_parse_sets(args.sets),
        )  # fmt: skip
    elif args.sets:
        raise LNLError("--set belongs to a new grid; a grid continues with the settings it was started with")
    common = dict(
        device=args.device, threads=args.threads, keep_run_files=args.keep_run_files, quiet=args.quiet,
        data_root=args.data_root, download=args.download,
    )  # fmt: skip
    failures = {}
    if args.executor == "ray":
        from .bench_ray import run_grid_ray

        rows, failures = run_grid_ray(
            grid, args.out, address=args.address, cells_at_once=args.cells_at_once,
            gpus_per_cell=args.gpus_per_cell, **common,
        )  # fmt: skip
    else:
        rows = bench.run_grid(grid, args.out, **common)
    print(bench.format_table(rows) if rows else "no finished cells")
    for cell, error in failures.items():
        print(f"lnl bench: {cell.path}: {error}", file=sys.stderr)
    if failures:
        print(
            f"lnl bench: failed cells: {len(failures)} (their error.json has the traceback); running the "
            "command again tries them again and keeps the finished cells",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _print_status(out: str) -> None:
    from collections import Counter

    from . import bench

    status = bench.cell_status(out)
    width = max(len(str(c.path)) for c in status) + 2
    for cell, (state, detail) in status.items():
        print(f"{str(cell.path):<{width}}{state:<9}{detail}".rstrip())
    counts = Counter(state for state, _ in status.values())
    line = ", ".join(f"{counts[s]} {s}" for s in ("done", "started", "failed", "pending") if counts[s])
    print(f"{len(status)} cells: {line}")
    if counts["started"]:
        print(
            "started: run files but no result, running now or interrupted (the files cannot tell); "
            f"lnl bench --out {out} resumes an interrupted cell from its last epoch"
        )


def cmd_verify(args: argparse.Namespace) -> int:
    from . import bench

    grid, _ = bench.load_grid(args.out)
    if args.all and args.cells:
        raise LNLError("choose one of --all and --cells")
    cells = list(bench.load_results(args.out)) if args.all else None
    if args.cells:
        by_path = {str(c.path): c for c in grid.cells()}
        unknown = [c for c in args.cells if c.rstrip("/") not in by_path]
        if unknown:
            raise LNLError(
                f"not cells of the grid in {args.out}: {', '.join(unknown)} (a cell is METHOD/NOISE-RATE/seedK)"
            )
        cells = [by_path[c.rstrip("/")] for c in args.cells]
    checks = bench.verify(args.out, cells, record_replica=args.record_replica, data_root=args.data_root)
    for c in checks:
        if c.problem:
            print(f"lnl verify: {c.cell.path}: {c.problem}", file=sys.stderr)
    ok = [c for c in checks if not c.problem]
    exact = sum(c.against in ("store", "replica") for c in ok)
    line = f"{exact} of {len(checks)} cells reproduced bit for bit"
    replica = sum(c.against == "replica" for c in ok)
    if replica:
        line += f" ({replica} against the replica recorded on this CPU kind)"
    recorded = sum(c.against == "recorded" for c in ok)
    if recorded:
        line += f"; {recorded} recorded as this CPU kind's replica in {bench.REPLICA_FILE}"
    band = sum(c.against == "band" for c in ok)
    if band:
        line += (
            f"; {band} only within the seed band: nothing of this CPU kind is on record, so bit-identity "
            "was not checked (lnl verify DIR --record-replica records it)"
        )
    print(line)
    return 1 if len(ok) < len(checks) else 0


def cmd_suspicious(args: argparse.Namespace) -> None:
    from . import samples

    rows = samples.read(args.run)
    print(samples.format_suspicious(rows, args.top))


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            cmd_list()
        elif args.command == "run":
            cmd_run(args)
        elif args.command == "bench":
            return cmd_bench(args)
        elif args.command == "verify":
            return cmd_verify(args)
        elif args.command == "suspicious":
            cmd_suspicious(args)
        else:
            cmd_table(args)
    except LNLError as exc:
        print(f"lnl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lnl: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
