"""`mobile-spinenet search`: a latency-aware SpineNet-Mobile architecture search (docs/search.md)."""
from __future__ import annotations

from mobile_spinenet.commands.common import finite_float, positive_float, positive_int, setup_logging


def _space(args):
    import yaml

    from mobile_spinenet.search.space import SearchSpace

    data = {}
    if args.space:
        try:
            with open(args.space) as f:
                data = yaml.safe_load(f) or {}
        except OSError as error:
            raise ValueError(f"--space {args.space}: {error.strerror}") from None
        except yaml.YAMLError:
            raise ValueError(f"--space {args.space}: not YAML") from None
        if not isinstance(data, dict):
            raise ValueError(f"--space {args.space}: expected a mapping of search space fields")
    if args.base:
        data["base"] = args.base
    try:
        return SearchSpace.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--space {args.space or '(defaults)'}: {error}") from None


def _baselines(text) -> tuple:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _options(args):
    from mobile_spinenet.search.latency import LatencyOptions
    from mobile_spinenet.search.proxy import ProxyOptions
    from mobile_spinenet.search.study import SearchOptions

    return SearchOptions(
        data=args.data, val=args.val, out=args.out, space=_space(args), trials=args.trials, target=args.target,
        target_ms=args.target_ms, objective=args.objective, mnas_weight=args.latency_weight,
        latency=LatencyOptions(image_size=args.image_size, threads=args.threads, runs=args.runs, rounds=args.rounds,
                               num_classes=args.num_classes),
        proxy=ProxyOptions(images=args.proxy_images, epochs=args.proxy_epochs, image_size=args.image_size,
                           val_images=args.proxy_val_images, recipe=args.proxy_recipe, seed=args.seed),
        storage=args.storage, study_name=args.study, seed=args.seed, baselines=_baselines(args.baselines),
        show_progress=not args.no_progress).validate()


def _cmd_search(args) -> int:
    from mobile_spinenet.search.study import run_search

    options = _options(args)  # every flag checked before TensorFlow loads
    setup_logging()
    summary = run_search(options)
    print(f"{summary.finished} finished trial(s), {summary.failed} failed; target {summary.target_ms:.2f} ms")
    for rank, row in enumerate(summary.best[:3], 1):
        print(f"  {rank}. trial {row['trial']}: proxy AP {row['proxy_AP']:.2f} at {row['latency_ms']:.2f} ms "
              f"({row['latency_ms'] / summary.target_ms:.2f}x target) -> {summary.out}/best/rank{rank}_"
              f"{row['architecture']}.yaml")
    for row in summary.baselines:
        print(f"  baseline {row['model']}: proxy AP {row['proxy_AP']:.2f} at {row['latency_ms']:.2f} ms "
              f"({row['latency_ms'] / summary.target_ms:.2f}x target)")
    print(f"all trials: {summary.out}/trials.csv; front: {summary.out}/pareto.png; {summary.out}/summary.md")
    return 0


def add_search_parser(sub) -> None:
    search = sub.add_parser(
        "search", help="search a SpineNet-Mobile architecture for your data and this device's int8 latency",
        description="A latency-aware architecture search (the paper's scale-permuted space plus widths, kernels, "
                    "expansion, squeeze-excite and activation) on Optuna: each trial times its untrained int8 network "
                    "against the --target model on this machine and trains it briefly on a subset of --data. Trials "
                    "are recorded in the study's storage; the same command resumes a killed search, and several "
                    "processes with the same --out (or --storage) share one study. Writes trials.csv, pareto.png, "
                    "summary.md and best/*.yaml (train them with `train --spec`). docs/search.md.")
    search.add_argument("--data", required=True, help="a folder with train/ and val/, or the training set with --val")
    search.add_argument("--val", help="validation set (default: DATA/val)")
    search.add_argument("--out", required=True, help="search folder (study.journal, archs/, trials.csv, best/)")
    search.add_argument("--trials", type=positive_int, default=20, help="finished trials wanted, over all workers (default 20)")
    search.add_argument("--base", help="SpineNet-Mobile model id whose blocks, head and recipe the search starts "
                        "from (default spinenet49xs)")
    search.add_argument("--space", help="YAML of search space fields over the defaults (docs/search.md)")
    search.add_argument("--target", default="mnv3_large_ssdlite",
                        help="the model whose int8 network latency is the target, ID or ID@SIZE (default "
                             "mnv3_large_ssdlite at --image-size)")
    search.add_argument("--target-ms", type=finite_float, help="a fixed latency target in ms instead of the --target's own")
    search.add_argument("--objective", default="mnas", choices=["mnas", "pareto"],
                        help="mnas: AP x (latency / target)^w, one objective (default); pareto: AP and latency")
    search.add_argument("--latency-weight", type=finite_float, default=-0.07, help="w of the mnas objective (default -0.07)")
    search.add_argument("--image-size", type=positive_int, default=256, help="input size of the proxy training and "
                        "of the latency (default 256)")
    search.add_argument("--threads", type=positive_int, default=1, help="benchmark threads (default 1)")
    search.add_argument("--runs", type=positive_int, default=30, help="timed runs per benchmark round (default 30)")
    search.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds with the target (default 3)")
    search.add_argument("--num-classes", type=positive_int, default=10,
                        help="classes of the files timed (default 10, the demo data's)")
    search.add_argument("--proxy-images", type=positive_int, default=1000, help="training images of the proxy (default 1000)")
    search.add_argument("--proxy-epochs", type=positive_float, default=4.0, help="proxy epochs (default 4)")
    search.add_argument("--proxy-val-images", type=positive_int, default=100, help="val images scored (default 100)")
    search.add_argument("--proxy-recipe", default="cpu_fast", help="the proxy's training recipe (default cpu_fast)")
    search.add_argument("--baselines", help="comma-separated SpineNet-Mobile ids (e.g. spinenet49xs,spinenet49xxs) "
                        "evaluated once with the same proxy and latency oracle and reported beside the trials "
                        "(baselines.csv, summary.md, pareto.png); not part of the study")
    search.add_argument("--storage", help="the study's storage: a journal file or a database URL such as "
                        "sqlite:///search.db (default OUT/study.journal)")
    search.add_argument("--study", default="search", help="study name in the storage (default search)")
    search.add_argument("--seed", type=int, default=0, help="sampler and proxy seed (default 0)")
    search.add_argument("--no-progress", action="store_true", help="no progress bar")
    search.set_defaults(func=_cmd_search)
