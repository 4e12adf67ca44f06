"""Command line: python -m course_lib {mode,check,build-tiny,course-model,notebooks,translations,lab,site}."""

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description="The multimodal-LLM course kit")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("mode", help="print the mode, device, model and data the course will use, and why")
    check = commands.add_parser("check", help="the environment check of notebook 00")
    check.add_argument("--short", action="store_true", help="without the per-lesson plan")
    commands.add_parser("build-tiny", help="build (or find cached) the tiny InternVL2 checkpoint and the food set")
    course_model = commands.add_parser(
        "course-model",
        help="run the course model's recipe and compare it with the shipped weights in assets/course-model",
    )
    course_model.add_argument("--publish", action="store_true", help="then copy the result into assets/course-model")
    course_model.add_argument(
        "--fresh",
        action="store_true",
        help="build everything again in a new cache folder (else a build already in the cache is reused)",
    )
    notebooks = commands.add_parser("notebooks", help="execute every notebook; executed copies and HTML go to --out")
    notebooks.add_argument(
        "--out", type=Path, help="default: build/notebooks, or build/notebooks/zh for the Chinese edition"
    )
    notebooks.add_argument(
        "--lang", choices=("en", "zh"), help="the edition to run (default: COURSE_LANG's, else English)"
    )
    notebooks.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    notebooks.add_argument(
        "--as-student",
        action="store_true",
        help="leave the exercises empty (by default their solutions are filled in and checked)",
    )
    translations = commands.add_parser(
        "translations",
        help="update the Chinese catalogues (translations/zh_CN) from the English lessons and write notebooks/zh",
    )
    translations.add_argument("--check", action="store_true", help="then list what is not translated yet")
    site = commands.add_parser("site", help="build the course's website in build/site from the executed lessons")
    site.add_argument(
        "--no-execute", action="store_true", help="fail, rather than execute, when a lesson has no executed copy"
    )
    lab = commands.add_parser("lab", help="open JupyterLab on the lessons, in the course's language (COURSE_LANG)")
    lab.add_argument("--host", default="127.0.0.1")
    lab.add_argument("--port", type=int, default=8888)
    args = parser.parse_args(argv)

    from .config import CourseConfigError
    from .i18n import LanguageError

    try:
        if args.command == "mode":
            from .artefacts import describe
            from .config import resolve

            print(describe(resolve()))
        elif args.command == "check":
            from .config import resolve
            from .envcheck import report

            print(report(short=args.short))
            resolve()  # a configuration error, reported above, also fails the command, so `make course` stops
        elif args.command == "build-tiny":
            from .config import resolve
            from .finetune.plan import linked_food_set
            from .tiny_internvl2 import ensure_tiny_checkpoint

            cache = resolve().cache
            print(ensure_tiny_checkpoint(cache))
            print(linked_food_set(cache))
        elif args.command == "course-model":
            import json
            import tempfile

            from .config import resolve
            from .course_model import SHIPPED_DIR, rebuild

            cache = resolve().cache
            cache = Path(tempfile.mkdtemp(prefix="course-model-", dir=cache)) if args.fresh else cache
            report = rebuild(cache, publish_to=SHIPPED_DIR if args.publish else None)
            print(json.dumps(report, indent=1))
        elif args.command == "notebooks":
            from .i18n import language
            from .notebooks import build_notebooks
            from .site import executed_folder

            lang = args.lang or language()
            out = args.out or executed_folder(lang)
            runs = build_notebooks(out, timeout=args.timeout, solutions=not args.as_student, lang=lang)
            failed = [run for run in runs if not run.ok]
            for run in failed:
                print(f"\n{run.path.name} failed:\n{run.error}", file=sys.stderr)
            print(f"{len(runs) - len(failed)} of {len(runs)} notebooks ran; executed copies and HTML in {out}")
            return 1 if failed else 0
        elif args.command == "translations":
            from .lessons import LESSONS
            from .translation import problems, write_chinese_edition

            for path in write_chinese_edition():
                print("wrote", path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
            if args.check:
                left = [problem for lesson in LESSONS for problem in problems(lesson.path)]
                for problem in left:
                    print(problem)
                print(f"{len(left)} cells still to translate or revise" if left else "every cell is translated")
                return 1 if left else 0
        elif args.command == "site":
            from .notebooks import build_notebooks
            from .site import LANGS, SITE_DIR, SiteError, build_site, executed_folder, stale_lessons

            for lang in LANGS:  # a lesson without an up-to-date executed copy is executed first
                stale = [] if args.no_execute else stale_lessons(lang)
                runs = build_notebooks(executed_folder(lang), stale, html=False, lang=lang) if stale else []
                if any(not run.ok for run in runs):
                    print(f"error: a {lang} lesson failed, so the site is not built", file=sys.stderr)
                    return 1
            try:
                report = build_site()
            except SiteError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            for lang in ("en", "zh"):
                if lang in report:
                    part = report[lang]
                    print(f"{lang}: {part['lessons']} lessons in {part['seconds']} s, {len(part['warnings'])} warnings")
                    for warning in part["warnings"]:
                        print("  " + warning)
            print(f"build/site: {report['bytes'] / 2**20:.1f} MiB; serve it with: python3 -m http.server -d {SITE_DIR}")
        elif args.command == "lab":
            import os

            from .i18n import ENV, language
            from .jupyter_lab import lab_command

            command = lab_command(language(), host=args.host, port=args.port)
            # Its kernels then speak the language of the folder they run in (notebooks/zh: Chinese), whichever
            # edition the lab opened on: a Chinese lesson opened from the English lab is still Chinese.
            os.environ.pop(ENV, None)
            os.execv(command[0], command)
    except (CourseConfigError, LanguageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
