"""Command line: python -m course_lib {mode,check,build-tiny,notebooks}."""
import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description="The multimodal-LLM course kit")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("mode", help="print the mode, device, model and data the course will use, and why")
    check = commands.add_parser("check", help="the environment check of notebook 00")
    check.add_argument("--short", action="store_true", help="without the per-lesson plan")
    commands.add_parser("build-tiny", help="build (or find cached) the tiny InternVL2 checkpoint")
    notebooks = commands.add_parser("notebooks", help="execute every notebook; executed copies and HTML go to --out")
    notebooks.add_argument("--out", type=Path, default=Path("build/notebooks"))
    notebooks.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)

    from .config import CourseConfigError

    try:
        if args.command == "mode":
            from .config import resolve

            print(resolve().describe())
        elif args.command == "check":
            from .envcheck import report

            print(report(short=args.short))
        elif args.command == "build-tiny":
            from .config import cache_dir
            from .tiny_internvl2 import ensure_tiny_checkpoint

            print(ensure_tiny_checkpoint(cache_dir()))
        elif args.command == "notebooks":
            from .notebooks import build_notebooks

            runs = build_notebooks(args.out, timeout=args.timeout)
            failed = [run for run in runs if not run.ok]
            for run in failed:
                print(f"\n{run.path.name} failed:\n{run.error}", file=sys.stderr)
            print(f"{len(runs) - len(failed)} of {len(runs)} notebooks ran; executed copies and HTML in {args.out}")
            return 1 if failed else 0
    except CourseConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
