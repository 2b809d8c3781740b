"""Stage `evaluate`: ACC and ASR of every model, detection quality against the ground truth,
wall time per stage, and the plot tables (sanitizer/evaluation.py)."""

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.evaluation import evaluate

    evaluate(cfg, paths)


if __name__ == "__main__":
    main("evaluate")
