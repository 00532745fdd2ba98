"""The `looseends` command (also `python -m looseends`): dump, watch, diff, attach, prometheus-rules, run.

looseends dump URL|FILE       fetch a live process's dump (or read a saved report, Go dump or goleak log)
looseends watch URL [URL...]  sample repeatedly; flag groups that keep growing or keep many units
                              blocked at the same place (Uber's LeakProf method), summed across
                              instances when given several; exit 1 on suspects
looseends diff BEFORE AFTER   the groups that grew between two dumps; exit 1 if any
looseends attach PID          a grouped dump of a running Python process, no code change in it
looseends prometheus-rules    the alerting rules looseends ships, for Prometheus
looseends run script.py ARGS  run a program; when it ends, report what it left running; exit 1 if any
looseends run -m module ARGS
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TextIO

from looseends._text import printable
from looseends._version import __version__
from looseends.analysis.ignore import GO_IGNORES
from looseends.attach import ROUTES, Visit, visit
from looseends.attach.family import visit_family
from looseends.core.growth import Fleet, Growth
from looseends.errors import DumpParseError, LooseEndsError
from looseends.frontends.fetching import FetchError, fetch_url, read_file, read_stdin
from looseends.frontends.run import run_program
from looseends.model import Snapshot
from looseends.report import Report
from looseends.report_json import report_from_dict
from looseends.selection import Selection, parse_kinds
from looseends.sources.go_dumps import is_go_dump, parse_go_dump
from looseends.sources.go_profile import is_pprof_profile, parse_pprof_profile

__all__ = ["main", "main_exit", "parser", "read_report"]

EXIT_CLEAN, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem to report in one line with exit status 2: bad URL, unreadable file, malformed dump."""


# Reading dumps ---------------------------------------------------------------------------------------


def dump_url(url: str, query: dict[str, str]) -> str:
    """The JSON dump URL for a pages URL (`.../debug/looseends/`) or a dump URL (`.../dump`)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path if parts.path.rstrip("/").endswith("/dump") else parts.path.rstrip("/") + "/dump"
    params = dict(urllib.parse.parse_qsl(parts.query)) | query | {"format": "json"}
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(params), ""))


def pprof_url(url: str) -> str:
    """A Go service's goroutine dump URL (debug=2) for its /debug/pprof/ index or goroutine URL."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    if path.rstrip("/").endswith("/debug/pprof"):
        path = path.rstrip("/") + "/goroutine"
    params = dict(urllib.parse.parse_qsl(parts.query))
    params.setdefault("debug", "2")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(params), ""))


def _read(source: str, token: str | None, query: dict[str, str]) -> bytes:
    if source.startswith(("http://", "https://")):
        go = "/debug/pprof" in urllib.parse.urlsplit(source).path
        return fetch_url(pprof_url(source) if go else dump_url(source, query), token)
    return read_stdin() if source == "-" else read_file(source)


def read_report(
    source: str, *, token: str | None = None, query: dict[str, str] | None = None, go_ignores: bool = True
) -> Report:
    """The one reader every command uses: a live endpoint (looseends or a Go service's net/http/pprof), a
    file (looseends JSON or any Go goroutine dump, goleak logs included), or `-` for standard input.
    goleak's default ignores (testing's runner, runtime.goexit, os/signal...) apply to Go dumps unless
    `go_ignores` is False."""
    shown = printable(source, 200)
    try:
        raw = _read(source, token, query or {})
    except FetchError as exc:
        raise CliError(f"{shown}: {exc}") from None
    profile = is_pprof_profile(raw)
    text = "" if profile else raw.decode(errors="replace")
    if profile or is_go_dump(text):
        try:
            snapshot = parse_pprof_profile(raw) if profile else parse_go_dump(text)
            wanted = _selection(query or {})  # the endpoint's own filters, applied here
        except (DumpParseError, ValueError) as exc:
            raise CliError(f"{shown}: {printable(str(exc), 500)}") from None
        if go_ignores:
            kept = tuple(u for u in snapshot.units if not any(rule(u) for rule in GO_IGNORES))
            snapshot = dataclasses.replace(snapshot, units=kept)
        return wanted.select(snapshot)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = printable(str(exc), 200) if isinstance(exc, ValueError) else "nested too deeply"
        raise CliError(
            f"{shown}: neither a looseends JSON report nor a Go goroutine dump ({reason})"
        ) from None
    if not isinstance(data, dict):
        raise CliError(f"{shown}: not a looseends report")
    try:
        report = report_from_dict(data, max_groups=10_000)
        wanted = _selection(query or {})  # a saved report is filtered here, as an endpoint filters its own
    except ValueError as exc:
        raise CliError(f"{shown}: {exc}") from None
    return wanted.select(Snapshot(report.units, report.now, report.errors))


def _selection(query: dict[str, str]) -> Selection:
    kinds = parse_kinds(query["kind"]) if query.get("kind") else None
    return Selection(kinds, query.get("blocked_on") or None, query.get("proven") == "1")


def _dump(args: argparse.Namespace, out: TextIO) -> int:
    query = {k: v for k, v in (("kind", args.kind), ("blocked_on", args.blocked_on)) if v}
    if args.proven:
        query["proven"] = "1"
    report = read_report(args.source, token=args.token, query=query, go_ignores=not args.no_go_ignores)
    if args.json:
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.write(report.render(full=args.debug == 2, title="looseends dump") + "\n")
    return EXIT_CLEAN


# Watching -----------------------------------------------------------------------------------------


def _truncation_note(growth: Growth, out: TextIO) -> None:
    if growth.truncated:
        samples = ", ".join(map(str, growth.truncated))
        out.write(
            f"note: the dump was truncated (size limit) in sample(s) {samples}: groups may be missing\n"
        )


def _watch(args: argparse.Namespace, out: TextIO, *, _sleep: Callable[[float], None] = time.sleep) -> int:
    if len(args.urls) > 1:
        return _watch_fleet(args, out, _sleep)
    growth = Growth(args.min_growth, args.min_blocked)
    live = out.isatty()
    for n in range(1, args.samples + 1):
        growth.add(read_report(args.urls[0], token=args.token, go_ignores=not args.no_go_ignores))
        total = growth.total()
        fewer = growth.total(-2) - total if n > 1 else 0
        why = f" ({fewer} fewer than the last sample: they finished)" if fewer > 0 else ""
        line = (
            f"sample {n}/{args.samples}: {total} units{why} in {len(growth.samples[-1])} places, "
            f"{len(growth.suspects())} suspect(s)"
        )
        out.write(("\r" + line) if live else line + "\n")
        out.flush()
        if n < args.samples:
            _sleep(args.interval)
    if live:
        out.write("\n")
    _truncation_note(growth, out)
    suspects = growth.suspects()
    if not suspects:
        out.write("looseends watch: no place grew, lost tasks or stayed blocked in large numbers\n")
        return EXIT_CLEAN
    out.write(f"looseends watch: {len(suspects)} suspect place(s)\n")
    for key, why in suspects.items():
        out.write(f"\n{key}: {why}\n  counts: {' -> '.join(map(str, growth.series(key)))}\n")
        out.write("\n".join(growth.paragraph(key)) + "\n")
    return EXIT_FOUND


def _watch_fleet(args: argparse.Namespace, out: TextIO, sleep: Callable[[float], None]) -> int:
    """Every instance each sample; one that is down is said so and the others go on."""
    fleet = Fleet(args.min_growth, args.min_blocked)
    for n in range(1, args.samples + 1):
        for url in args.urls:
            try:
                fleet.add(url, read_report(url, token=args.token, go_ignores=not args.no_go_ignores))
            except CliError as exc:
                fleet.missed(url, str(exc))
        up = len(args.urls) - len(fleet.down)
        out.write(f"sample {n}/{args.samples}: {up} of {len(args.urls)} instances answered\n")
        out.writelines(f"  down: {why}\n" for why in fleet.down.values())
        out.flush()
        if n < args.samples:
            sleep(args.interval)
    if not fleet.instances:
        raise CliError("no instance answered")
    return _fleet_verdict(fleet, len(args.urls), out)


def _fleet_verdict(fleet: Fleet, instances: int, out: TextIO) -> int:
    suspects = fleet.suspects()
    if not suspects:
        out.write(f"looseends watch: no place grew or lost tasks on any of {instances} instances\n")
        return EXIT_CLEAN
    out.write(f"looseends watch: {len(suspects)} suspect place(s) across {instances} instances\n")
    for key, found in suspects.items():
        out.write(
            f"\n{key}: on {len(found)} of {instances} instance(s), "
            f"total growth {fleet.total_growth(key):+d}\n"
        )
        for url, why in found.items():
            counts = " -> ".join(map(str, fleet.instances[url].series(key)))
            out.write(f"  {url}: {why} ({counts})\n")
        out.write("\n".join(fleet.paragraph(key)) + "\n")
    return EXIT_FOUND


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    before, after = Growth(1, 1), Growth(1, 1)
    for growth, source in ((before, args.before), (after, args.after)):
        growth.add(read_report(source, token=args.token, go_ignores=not args.no_go_ignores))
    _truncation_note(before, out)
    _truncation_note(after, out)
    grown = after.grown(before)
    if not grown:
        out.write("looseends diff: no place grew\n")
        return EXIT_CLEAN
    out.write(f"looseends diff: {len(grown)} place(s) grew\n")
    for key, (old, new) in sorted(grown.items(), key=lambda item: item[1][0] - item[1][1]):
        out.write(f"\n{key}: {old} -> {new} (+{new - old})\n")
        out.write("\n".join(after.paragraph(key)) + "\n")
    return EXIT_FOUND


def _attach(args: argparse.Namespace, out: TextIO) -> int:
    if args.children:
        return _attach_family(args, out)
    attached = visit(args.pid, timeout=args.timeout, proven=args.proven, via=args.via)
    report = _attach_selection(args).select(
        Snapshot(attached.report.units, attached.report.now, attached.report.errors)
    )
    if args.json:
        data = report.to_dict()
        data["attached"] = {"pid": args.pid, **_visit_dict(attached)}
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        title = f"looseends dump of process {args.pid} ({attached.describe()})"
        out.write(report.render(full=args.debug == 2, title=title) + "\n")
    return EXIT_CLEAN


def _attach_family(args: argparse.Namespace, out: TextIO) -> int:
    family = visit_family(args.pid, timeout=args.timeout, proven=args.proven, via=args.via)
    report = _attach_selection(args).select(
        Snapshot(family.report.units, family.report.now, family.report.errors)
    )
    if args.json:
        data = report.to_dict()
        data["attached"] = {
            "pid": args.pid,
            "processes": [
                {"pid": member.pid, "name": member.name, "error": member.error}
                | (_visit_dict(member.visit) if member.visit is not None else {})
                for member in family.members
            ],
        }
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        title = f"looseends dump of process {args.pid} and its Python children ({family.describe()})"
        rendered = report.render(full=args.debug == 2, title=title).split("\n", 1)
        out.write("\n".join([rendered[0], *family.lines(), *rendered[1:]]) + "\n")
    return EXIT_CLEAN


def _attach_selection(args: argparse.Namespace) -> Selection:
    return Selection(parse_kinds(args.kind) if args.kind else None, args.blocked_on or None)


def _visit_dict(attached: Visit) -> dict[str, object]:
    return {"route": attached.route, "python": list(attached.version)}


def _prometheus_rules(args: argparse.Namespace, out: TextIO) -> int:
    """The alerting rules shipped with the package, for a Prometheus `rule_files:` entry."""
    out.write(resources.files("looseends.frontends").joinpath("prometheus_rules.yml").read_text())
    return EXIT_CLEAN


# Entry ----------------------------------------------------------------------------------------------


GO_IGNORES_HELP = "Go dumps: keep what goleak ignores by default (testing's runner, runtime.goexit, ...)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="looseends", description=__doc__.split("\n\n")[0] if __doc__ else None)
    top.add_argument("--version", action="version", version=f"looseends {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    dump = commands.add_parser("dump", help="render a live dump (URL) or a saved JSON report (FILE, or -)")
    dump.add_argument(
        "source", help="a looseends or Go net/http/pprof URL, a JSON report or Go dump file, or -"
    )
    dump.add_argument("--json", action="store_true", help="print the JSON instead of text")
    dump.add_argument(
        "--debug", type=int, choices=(1, 2), default=1, help="1: grouped (default); 2: every unit"
    )
    dump.add_argument(
        "--kind",
        type=_kinds,
        help="only these kinds: thread, task, process, greenlet, goroutine (comma-separated)",
    )
    dump.add_argument("--blocked-on", help="only units whose blocked-on code matches this glob (queue.*)")
    dump.add_argument("--proven", action="store_true", help="only units proven stuck forever")
    dump.add_argument("--token", help="the endpoint's token, if it has one")
    dump.add_argument("--no-go-ignores", action="store_true", help=GO_IGNORES_HELP)

    watch = commands.add_parser(
        "watch", help="sample live endpoints and flag groups that keep growing (several: a fleet)"
    )
    watch.add_argument(
        "urls",
        nargs="+",
        metavar="url",
        help="http://host:port/debug/looseends/ or a Go service's /debug/pprof/; several for a fleet",
    )
    watch.add_argument("--interval", type=_positive_float, default=5.0, help="seconds between samples (5)")
    watch.add_argument("--samples", type=_count, default=10, help="how many samples (10)")
    watch.add_argument("--min-growth", type=_count, default=1, help="flag a group that grew by this much (1)")
    watch.add_argument(
        "--min-blocked", type=_count, default=50, help="flag a group this large in every sample (50)"
    )
    watch.add_argument("--token", help="the endpoint's token, if it has one")
    watch.add_argument("--no-go-ignores", action="store_true", help=GO_IGNORES_HELP)

    diff = commands.add_parser("diff", help="show the groups that grew between two dumps (Python or Go)")
    diff.add_argument("before", help="the earlier dump: URL, file or -")
    diff.add_argument("after", help="the later dump: URL, file or -")
    diff.add_argument("--token", help="the endpoint's token, if it has one")
    diff.add_argument("--no-go-ignores", action="store_true", help=GO_IGNORES_HELP)

    _add_attach(commands)

    commands.add_parser(
        "prometheus-rules", help="print the Prometheus alerting rules looseends ships (docs/prometheus.md)"
    )

    run = commands.add_parser("run", help="run a Python program and report what it left running")
    run.add_argument("-m", dest="module", help="run a module, like python -m")
    run.add_argument("--timeout", type=float, default=None, help="seconds to settle before judging (0.5)")
    run.add_argument("program", nargs=argparse.REMAINDER, help="script.py and its arguments")
    return top


def _add_attach(commands: Any) -> None:
    attached = commands.add_parser(
        "attach",
        help="a grouped dump of a running Python 3.11+ process by PID, no code change (docs/attach.md)",
    )
    attached.add_argument("pid", type=int, help="the process id")
    attached.add_argument("--json", action="store_true", help="print the JSON instead of text")
    attached.add_argument("--debug", type=int, choices=(1, 2), default=1, help="1: grouped; 2: every unit")
    attached.add_argument("--kind", type=_kinds, help="only these kinds (comma-separated)")
    attached.add_argument("--blocked-on", help="only units whose blocked-on code matches this glob")
    attached.add_argument("--proven", action="store_true", help="only units proven stuck forever")
    attached.add_argument(
        "--timeout", type=_positive_float, default=10.0, help="seconds to wait for the target (10)"
    )
    attached.add_argument(
        "--children",
        action="store_true",
        help="also attach to every Python process under PID (a pre-fork server's workers): one report",
    )
    attached.add_argument(
        "--via",
        choices=ROUTES,
        help="the way in: a borrowed waiting thread (Linux x86-64; the default there) or "
        "sys.remote_exec (the same Python 3.14+ on both sides; the default elsewhere)",
    )


def _kinds(text: str) -> str:
    try:
        parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """parse_args, except that `run` stops at the program: what follows (even --help) is the program's."""
    if argv[:1] == ["run"]:
        ours, rest = ["run"], list(argv[1:])
        while rest and rest[0] in ("-m", "--timeout", "-h", "--help"):
            flag = rest.pop(0)
            ours.append(flag)
            if flag in ("-m", "--timeout") and rest:
                ours.append(rest.pop(0))
                if flag == "-m":
                    break  # like python -m: what follows belongs to the module
        args = parser().parse_args(ours)
        args.program = rest
        return args
    return parser().parse_args(argv)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    stream = out or sys.stdout
    handlers = {
        "dump": _dump,
        "watch": _watch,
        "diff": _diff,
        "prometheus-rules": _prometheus_rules,
        "attach": _attach,
        "run": run_program,
    }
    try:
        return handlers[args.command](args, stream)
    except (CliError, LooseEndsError) as exc:
        print(f"looseends {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `looseends dump URL | head`: the reader has what it wanted
        return EXIT_CLEAN


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
