"""Run the benchmarks, print one table and write it as JSON and Markdown.

    .venv/bin/python -m benchmarks [--quick] [--only idle,fanout,startup,chat] [--out DIR]
    .venv/bin/python benchmarks/run.py ...

Benchmarks (each measures J.A.R.V.I.S. and its peer side by side, taking turns, in this one run):

  idle     CPU time per minute and RSS of the server serving one headless Chromium at a 2 s refresh,
           against Glances' web server (process list on and off)
  fanout   latency and highest sustained event rate to 1/10/100 /api/events clients, latency to
           1 and 3 browser windows
  startup  launch to the first page served, against glances -w
  chat     the Gemma GGUF through the app against llama-cpp-python with its defaults, its OpenAI-compatible
           server and the app's own model wrapper: tokens/s, CPU threads, the first token of a cold
           start and of a 40-message conversation, resident memory without a model (--chat-parts)
  processes  CPU cost of the process scan at the Processes panel's cadence, a few hundred processes running
  history  database size after 30 simulated days; time to draw the 7-day and 30-day chart in Chromium

Every process started here (servers, Glances, Chromium) is ended on success, error and Ctrl+C.
Results: benchmarks/results/latest.{json,md} (a --quick run: latest-quick.{json,md}).
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ''):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = 'benchmarks'  # pylint: disable=redefined-builtin

from benchmarks import chat, fanout, history, idle, processes, report, startup  # noqa: E402
from benchmarks.common import BENCH_DIR, Processes, log, machine_info, modified_since, source_state  # noqa: E402

ALL = ('idle', 'fanout', 'startup', 'chat', 'processes', 'history')


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(',') if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m benchmarks', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('--quick', action='store_true', help='a short smoke run: fewer repetitions, shorter windows')
    parser.add_argument('--only', default=','.join(ALL),
                        help=f'comma-separated benchmarks to run (default: all of {",".join(ALL)})')
    parser.add_argument('--skip', default='', help='comma-separated benchmarks to leave out')
    parser.add_argument('--out', type=Path, default=BENCH_DIR / 'results', help='where the results go')
    parser.add_argument('--name', default=None, help='file name stem of the results (default: latest or latest-quick)')
    group = parser.add_argument_group('fine tuning (defaults depend on --quick)')
    group.add_argument('--idle-window', type=float, default=None, help='idle: seconds measured per repetition (60)')
    group.add_argument('--idle-warmup', type=float, default=None, help='idle: seconds of warm-up (15)')
    group.add_argument('--idle-repeat', type=int, default=None, help='idle: repetitions of each subject (3)')
    group.add_argument('--ws-clients', type=_int_list, default=None, help='fanout: client counts (1,10,100)')
    group.add_argument('--windows', type=_int_list, default=None, help='fanout: browser window counts (1,3; 0: none)')
    group.add_argument('--rates', type=_int_list, default=None,
                       help='fanout: publish rate steps, events/s (50,100,200,500,1000,2000,5000)')
    group.add_argument('--startup-repeat', type=int, default=None, help='startup: launches of each subject (5)')
    group.add_argument('--chat-repeat', type=int, default=None, help='chat: answers of each subject per phase (6)')
    group.add_argument('--max-tokens', type=int, default=128,
                       help='chat: max_tokens of every answer of the throughput and threads parts (128)')
    group.add_argument('--chat-parts', default=','.join(chat.PARTS),
                       help=f'chat: the parts to run (default: all of {",".join(chat.PARTS)})')
    group.add_argument('--scan-window', type=float, default=None, help='processes: seconds measured per subject (60)')
    group.add_argument('--scan-repeat', type=int, default=None, help='processes: repetitions of each subject (2)')
    group.add_argument('--scan-processes', type=int, default=None,
                       help='processes: sleeping processes started besides the machine\'s own (300)')
    group.add_argument('--history-every', type=float, default=None,
                       help='history: seconds between simulated samples (2; --quick: 10)')
    group.add_argument('--chart-repeat', type=int, default=None, help='history: times each range is drawn (10)')
    return parser


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [b.strip() for b in args.only.split(',') if b.strip()]
    skipped = {b.strip() for b in args.skip.split(',') if b.strip()}
    unknown = [b for b in [*chosen, *skipped] if b not in ALL]
    if unknown:
        print(f'unknown benchmark(s): {", ".join(unknown)} (choose from {", ".join(ALL)})', file=sys.stderr)
        return 2
    chosen = [b for b in ALL if b in chosen and b not in skipped]
    name = args.name or ('latest-quick' if args.quick else 'latest')
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl+C, even where the shell started us ignoring it

    argv_text = ' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    results: dict[str, Any] = {
        'mode': 'quick' if args.quick else 'full',
        'command': f'python -m benchmarks {argv_text}'.strip(),
        'machine': machine_info(),
        'benchmarks': {},
        'notes': [],
    }
    procs = Processes()
    failed = False
    started = time.monotonic()
    started_wall = time.time()
    models_tmp = None
    try:
        models_dir = None
        if {'startup', 'chat'} & set(chosen):
            from jarvis.models.default_model import ensure_default_model  # pylint: disable=import-outside-toplevel
            models_tmp = tempfile.TemporaryDirectory(prefix='bench-models-')
            models_dir = Path(models_tmp.name)
            log('assembling the default Gemma GGUF for the start-up and chat benchmarks')
            ensure_default_model(models_dir)
        for benchmark in chosen:
            log(f'=== {benchmark} ===')
            began = time.monotonic()
            try:
                if benchmark == 'idle':
                    outcome = idle.run(procs, quick=args.quick, repeat=args.idle_repeat, window=args.idle_window,
                                       warmup=args.idle_warmup)
                elif benchmark == 'fanout':
                    outcome = fanout.run(procs, quick=args.quick, clients=args.ws_clients, windows=args.windows,
                                         rates=[float(r) for r in args.rates] if args.rates else None)
                elif benchmark == 'startup':
                    outcome = startup.run(procs, quick=args.quick, repeat=args.startup_repeat, models_dir=models_dir)
                elif benchmark == 'processes':
                    outcome = processes.run(procs, quick=args.quick, repeat=args.scan_repeat, window=args.scan_window,
                                            processes=args.scan_processes)
                elif benchmark == 'history':
                    outcome = history.run(procs, quick=args.quick, every=args.history_every, repeat=args.chart_repeat)
                else:
                    outcome = chat.run(procs, quick=args.quick, repeat=args.chat_repeat, max_tokens=args.max_tokens,
                                       parts=[p.strip() for p in args.chat_parts.split(',') if p.strip()],
                                       models_dir=models_dir)
            except Exception as error:  # pylint: disable=broad-except  # report it, run the others
                failed = True
                traceback.print_exc()
                outcome = {'error': f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'}
            finally:
                procs.cleanup()  # whatever a failed benchmark left behind
            outcome['duration_s'] = round(time.monotonic() - began, 1)
            results['benchmarks'][benchmark] = outcome
    except KeyboardInterrupt:
        log('interrupted: stopping every process this run started')
        results['interrupted'] = True
        failed = True
    finally:
        procs.cleanup()
        if models_tmp is not None:
            models_tmp.cleanup()
    results['duration_s'] = round(time.monotonic() - started, 1)
    results['source_at_end'] = source_state()
    results['app_files_changed_during_run'] = modified_since(started_wall)
    results['load_average_at_end'] = [round(v, 2) for v in os.getloadavg()]
    results['notes'] = _notes(results)
    if results.get('interrupted') and args.name is None:
        name += '-interrupted'  # a partial run never replaces the last complete one
    text = report.write(results, args.out / f'{name}.json', args.out / f'{name}.md')
    print()
    print(text)
    log(f'wrote {args.out / (name + ".json")} and {args.out / (name + ".md")} in {results["duration_s"]:.0f} s')
    return 1 if failed else 0


def _notes(results: dict[str, Any]) -> list[str]:
    """Plain sentences on what the table measured and any target it missed."""
    notes: list[str] = []
    bench = results['benchmarks']
    if results.get('interrupted'):
        notes.append('The run was interrupted: the results are partial.')
    load = results['machine']['load_average_at_start'][0]
    if load > 0.5 * (results['machine']['logical_cores'] or 1):
        notes.append(f'The machine was busy when the run started (1-minute load average {load:g} on '
                     f'{results["machine"]["logical_cores"]} cores): absolute figures are noisy; the ratios '
                     'compare subjects that took turns under the same load.')
    if 'idle' in bench and 'settings' in bench['idle']:
        notes.append('Idle: CPU is user+sys of the server process and all its descendants (psutil), over the '
                     'window after the warm-up, with one headless Chromium connected; Chromium itself is not '
                     'counted. The app records its history (always on, with a process scan a minute); its Processes panel '
                     'has the processes scanned (every 5 s or less often, within the scans\' CPU budget) only while it is in view, which it was '
                     + ('' if any(r.get('processes_panel_in_view') for r in bench['idle'].get('runs', [])) else 'not ')
                     + 'in the browser\'s window. RSS is the peak of 1-s samples of the tree. Glances without its process list: '
                     '--disable-process alone only hides it in the terminal UI of Glances 4.5.8 (its web server '
                     'still gathers it and sends it in /api/4/all), so the plugins processcount, processlist and '
                     'programlist are disabled too. Readiness is polled on /api/hub/stats for the app and on / for '
                     'Glances, so that no page is fetched without the browser that shows it.')
    if 'processes' in bench and 'stats' in bench['processes']:
        settings = bench['processes']['settings']
        notes.append(f'Processes: the scan worker (benchmarks/scan_worker.py) runs the app\'s ProcessMonitor alone, '
                     f'with one demand every {settings["interval_s"]:g} s as a window showing the Processes panel '
                     f'takes it; its CPU time minus that of the same worker without a demand is the scan\'s cost. '
                     f'{settings["extra_processes"]} sleeping processes ran besides the machine\'s own '
                     f'({settings["processes_scanned"]} scanned).')
    if 'history' in bench and 'size' in bench['history']:
        size = bench['history']['size']
        notes.append(f'History: {size["simulated_days"]:g} days recorded by the app\'s own recorder on a simulated '
                     f'clock, a sample every {size["sample_every_s"]:g} s with GPU readings, and each minute the most '
                     f'process rows a minute can get ({size["process_rows_per_minute"]:.0f}); the size is the '
                     'database file after a WAL checkpoint. Drawing is timed in the page, from the click on the '
                     'range to ECharts\' finished event with that range\'s data, on the app started on that '
                     'database.')
    if 'fanout' in bench and 'websocket' in bench['fanout']:
        notes.append('Fan-out: the WebSocket clients run in the benchmark process on the same two cores as the '
                     'server, so their own scheduling delay is part of the latency and of the highest rate. '
                     'Window latency is measured in the page (MutationObserver, performance.timeOrigin + '
                     'performance.now()) when the toast of a published Notification enters the DOM. The server is '
                     'jarvis.app.run() as `jarvis --no-open` runs it, plus a benchmark-only publisher route.')
    if 'chat' in bench and 'error' not in bench['chat']:
        notes += chat.notes(bench['chat'])
    if results.get('app_files_changed_during_run'):
        notes.append('The app\'s code changed while this run was going on (another change was being made in the '
                     'same working tree): ' + ', '.join(results['app_files_changed_during_run'])
                     + '. Each server started after a change ran the changed code.')
    missed = []
    for name, outcome in bench.items():
        for key, goal in (outcome.get('targets') or {}).items():
            if goal.get('met') is False:
                missed.append(f'{name}.{key}')
    if missed:
        notes.append('Missed targets: ' + ', '.join(missed) + '.')
    for name, outcome in bench.items():
        if 'error' in outcome:
            notes.append(f'{name} failed: {outcome["error"]}')
    return notes


if __name__ == '__main__':
    sys.exit(main())
