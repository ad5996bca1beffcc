"""The results as one Markdown table (printed and written to a .md file) and as JSON."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

NA = '–'


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    if isinstance(value, int) and not isinstance(value, bool):
        return f'{value:,}'
    return f'{value:,.{digits}f}'


def _spread(stats: dict[str, Any] | None, digits: int = 2, scale: float = 1.0) -> str:
    """``p50 (p10–p90)``; with fewer than 5 repetitions the spread is min–max."""
    if not stats or not stats.get('n'):
        return NA
    p50 = stats['p50'] * scale
    if stats['n'] == 1:
        return _num(p50, digits)
    low, high = (stats['p10'], stats['p90']) if stats['n'] >= 5 else (stats['min'], stats['max'])
    return f'{_num(p50, digits)} ({_num(low * scale, digits)}–{_num(high * scale, digits)})'


def _met(target: dict[str, Any] | None) -> str:
    if not target or target.get('met') is None:
        return 'not measured'
    return 'yes' if target['met'] else '**NO (missed)**'


def _target_text(target: dict[str, Any] | None, unit: str = '') -> str:
    if not target:
        return NA
    op = {'<=': '≤', '>=': '≥', '<': '<'}[target['op']]
    return f'{op} {target["limit"]:g}{unit}'


def rows(results: dict[str, Any]) -> list[list[str]]:
    """| Benchmark | Measure | J.A.R.V.I.S. | Peer | Ratio app/peer | Target | Met |"""
    table: list[list[str]] = []
    bench = results.get('benchmarks', {})

    idle = bench.get('idle')
    if idle and 'stats' in idle:
        s, r, t = idle['stats'], idle['ratios'], idle['targets']
        n = idle['settings']['repeat']
        window = idle['settings']['window_s']
        for peer, label in (('glances', 'Glances, process list on'), ('glances_noproc', 'Glances, process list off')):
            table.append([f'Idle, 1 browser window, 2 s refresh ({n}× {window:g} s)',
                          f'CPU-s per minute (server tree, user+sys) vs {label}',
                          _spread(s['app']['cpu_s_per_min'], 3), _spread(s[peer]['cpu_s_per_min'], 3),
                          _num(r[peer]['cpu_of_medians'], 3), _target_text(t[f'cpu_ratio_vs_{peer}']) + ' (ratio)',
                          _met(t[f'cpu_ratio_vs_{peer}'])])
        table.append(['Idle', 'CPU-s per minute, absolute (0.3 CPU-s/min = 0.5 % of a core)',
                      _spread(s['app']['cpu_s_per_min'], 3), NA, NA, _target_text(t['cpu_s_per_min']),
                      _met(t['cpu_s_per_min'])])
        table.append(['Idle', 'Peak RSS, MiB (no model loaded) vs Glances, process list on / off',
                      _spread(s['app']['rss_mib_peak'], 1),
                      f'{_spread(s["glances"]["rss_mib_peak"], 1)} / {_spread(s["glances_noproc"]["rss_mib_peak"], 1)}',
                      f'{_num(r["glances"]["rss_of_medians"])} / {_num(r["glances_noproc"]["rss_of_medians"])}',
                      _target_text(t['rss_mib'], ' MiB'), _met(t['rss_mib'])])
        table.append(['Idle', 'Page updates per minute (check: both refresh every ~2 s)',
                      _spread(s['app']['page_updates_per_min'], 1),
                      f'{_spread(s["glances"]["page_updates_per_min"], 1)} / '
                      f'{_spread(s["glances_noproc"]["page_updates_per_min"], 1)}', NA, NA, NA])
        hidden = idle.get('hidden')
        if hidden and 'stats' in hidden:
            h = hidden['stats']
            table.append([f'Idle, the only window hidden ({len(hidden["runs"])}× {window:g} s)',
                          'CPU-s per minute (server tree); 0.03 CPU-s/min = 0.05 % of a core',
                          _spread(h['cpu_s_per_min'], 3), NA, NA, _target_text(hidden['targets']['cpu_s_per_min']),
                          _met(hidden['targets']['cpu_s_per_min'])])
            table.append(['Idle, the only window hidden', 'Page updates per minute while hidden (check: none)',
                          _spread(h['page_updates_per_min'], 1), NA, NA, NA, NA])
            if 'reference_cpu_s_per_min' in h:
                table.append(['Idle, reference', 'CPU-s per minute of a bare Python asyncio loop waking once a second '
                              '(the machine\'s cost of a wake-up in this run)', _spread(h['reference_cpu_s_per_min'], 3),
                              NA, NA, NA, NA])
    elif idle:
        table.append(['Idle', 'failed: ' + idle.get('error', '?'), NA, NA, NA, NA, 'not measured'])

    fan = bench.get('fanout')
    if fan and 'websocket' in fan:
        settings = fan['settings']
        for count, data in fan['websocket'].items():
            lat = data['latency']
            met = _met(fan['targets']['p99_ms_at_100_clients']) if count == '100' else NA
            target_text = '< 50 ms (p99)' if count == '100' else NA
            table.append([f'Fan-out, {count} /api/events client(s)',
                          f'Latency publish→client at {settings["latency_rate"]:g} ev/s, p50 / p99 ms '
                          f'(p99 over {settings["repeat"]} reps in brackets)',
                          f'{_num(lat["p50_ms"])} / {_num(lat["p99_ms"])} ({_spread_range(lat["p99_ms_per_rep"])})',
                          NA, NA, target_text, met])
            failed = data.get('first_failed_rate')
            why = '; '.join(data.get('failed_because') or [])
            table.append([f'Fan-out, {count} /api/events client(s)',
                          'Highest sustained rate without drops, events/s (steps: '
                          + ', '.join(f'{r:g}' for r in settings['rate_steps']) + f'; {settings["step_seconds"]:g} s each)',
                          (_num(data['max_rate'], 0) if data['max_rate'] else 'below the first step')
                          + (f' (at {failed:g}: {why})' if failed else ' (no step failed)'),
                          NA, NA, NA, NA])
        for count, data in fan.get('windows', {}).items():
            table.append([f'Fan-out, {count} NiceGUI window(s) (System view)',
                          f'Latency publish→DOM (toast) at {data["rate"]:g} ev/s, p50 / p99 ms',
                          f'{_num(data["p50_ms"])} / {_num(data["p99_ms"])}'
                          + (f', {data["missing"]} not seen' if data['missing'] else ''), NA, NA, NA, NA])
    elif fan:
        table.append(['Fan-out', 'failed: ' + fan.get('error', '?'), NA, NA, NA, NA, 'not measured'])

    start = bench.get('startup')
    if start and 'stats' in start:
        s, t = start['stats'], start['targets']
        n = start['settings']['repeat']
        table.append([f'Start-up ({n}×)', 'Launch → first page / served 200, s (no model) vs glances -w',
                      _spread(s['app'], 2), _spread(s['glances'], 2), _num(start['ratio_app_vs_glances']),
                      _target_text(t['app_s'], ' s'), _met(t['app_s'])])
        if 'app_with_model' in s:
            table.append([f'Start-up ({n}×)', 'Same, the default Gemma model checked and put on standby (it loads with the first message)',
                          _spread(s['app_with_model'], 2), _spread(s['glances'], 2),
                          _num(start['ratio_app_with_model_vs_glances']),
                          _target_text(t['app_with_model_s'], ' s'), _met(t['app_with_model_s'])])
        live = start.get('live')
        if live and 'stats' in live:
            labels = {'native': 'Launch → live values in the native window (Xvfb), s',
                      'browser': 'Launch → live values in a browser (headless Chromium), s'}
            for subject, stats in live['stats'].items():
                table.append([f'Start-up ({live["settings"]["repeat"]}×)', labels[subject], _spread(stats, 2), NA, NA,
                              _target_text(live['targets'][f'{subject}_s'], ' s'), _met(live['targets'][f'{subject}_s'])])
        elif live:
            table.append(['Start-up', 'live values: failed: ' + live.get('error', '?'), NA, NA, NA, NA, 'not measured'])
    elif start:
        table.append(['Start-up', 'failed: ' + start.get('error', '?'), NA, NA, NA, NA, 'not measured'])

    chat = bench.get('chat')
    if chat and 'settings' in chat:
        table += chat_rows(chat)
    elif chat:
        table.append(['Chat', 'failed: ' + chat.get('error', '?'), NA, NA, NA, NA, 'not measured'])

    scan = bench.get('processes')
    if scan and 'stats' in scan:
        s, t, settings = scan['stats'], scan['targets'], scan['settings']
        n = settings['repeat']
        kept = s['procfs'].get('seconds_between_scans', {}).get('p50')
        every = f'every {kept:.0f} s, ' if kept else ''
        where = (f'Process scan {every}asked every {settings["interval_s"]:g} s, {settings["processes_scanned"]} '
                 f'processes ({n}× {settings["window_s"]:g} s)')
        table.append([where, 'CPU added, % of one core (/proc fast path)',
                      _spread(s['procfs']['added_core_percent'], 3), NA, NA,
                      _target_text(t['added_core_percent'], ' %'), _met(t['added_core_percent'])])
        table.append([where, 'CPU per scan, ms: /proc fast path vs psutil.process_iter (other platforms)',
                      _spread(s['procfs']['ms_per_scan'], 2), _spread(s['psutil']['ms_per_scan'], 2),
                      _num(ratio_of(s['procfs']['ms_per_scan'], s['psutil']['ms_per_scan']), 3), NA, NA])
    elif scan:
        table.append(['Process scan', 'failed: ' + scan.get('error', '?'), NA, NA, NA, NA, 'not measured'])

    past = bench.get('history')
    if past and 'size' in past:
        size, t, settings = past['size'], past['targets'], past['settings']
        table.append([f'History, {settings["days"]:g} simulated days, a sample every {settings["sample_every_s"]:g} s',
                      'Database size, MB (after a WAL checkpoint)', _num(size['db_bytes'] / 1e6, 1), NA, NA,
                      _target_text(t['size_mb'], ' MB'), _met(t['size_mb'])])
        for name, label in (('7d', '7 days'), ('30d', '30 days')):
            goal = t.get(f'draw_{name}_ms')
            table.append([f'History chart ({settings["repeat"]}×), Chromium',
                          f'Click → {label} drawn, ms ({past["drawing"]["points"].get(name, NA)} points per series)',
                          _spread(past['stats'][name], 0), NA, NA,
                          _target_text(goal, ' ms') if goal else NA, _met(goal) if goal else NA])
    elif past:
        table.append(['History', 'failed: ' + past.get('error', '?'), NA, NA, NA, NA, 'not measured'])
    return table


PEERS = {'llama_defaults': 'llama-cpp-python Llama() with its defaults',
         'llama_server': 'llama_cpp.server (OpenAI API) with its defaults',
         'wrapper': "the app's own model wrapper (what the app adds)"}


def chat_rows(chat: dict[str, Any]) -> list[list[str]]:
    table: list[list[str]] = []
    targets = chat.get('targets') or {}
    for part in chat['settings'].get('parts', []):
        outcome = chat.get(part) or {}
        if 'error' in outcome:
            table.append([f'Chat ({part})', 'failed: ' + outcome['error'], NA, NA, NA, NA, 'not measured'])
    throughput = chat.get('throughput') or {}
    if 'phases' in throughput:
        n = throughput['repeat']
        labels = {'window': 'streaming to 1 browser window on /chat', 'events': 'streaming to 1 /api/events client'}
        for phase, data in throughput['phases'].items():
            stats = data['stats']
            for peer, name in PEERS.items():
                goal = targets.get(f'ratio_{phase}_vs_{peer}')
                table.append([f'Chat, Gemma 3 270M, {chat["settings"]["max_tokens"]} tokens max, temp 0 ({n}×)',
                              f'Tokens/s vs {name}, {labels[phase]}', _spread(stats['app']['tokens_per_s'], 1),
                              _spread(stats[peer]['tokens_per_s'], 1), _num(data['ratios'][peer], 3),
                              _target_text(goal) + ' (ratio)', _met(goal)])
            table.append(['Chat', f'First token, s ({phase} phase): app vs Llama() / server / wrapper',
                          _spread(stats['app']['first_token_s'], 3),
                          ' / '.join(_spread(stats[peer]['first_token_s'], 3) for peer in PEERS), NA, NA, NA])
    threads = chat.get('threads') or {}
    if 'stats' in threads:
        auto = threads['auto']
        names = {'1': '1', '2': '2', '0': f'auto ({auto["threads"]}+{auto["batch_threads"]})'}
        order = ('1', '2', '0')
        table.append([f'Chat, CPU threads ({threads["repeat"]}×), 1 browser window',
                      'Tokens/s with ' + ' / '.join(names[c] for c in order) + ' threads',
                      ' / '.join(_spread(threads['stats'][c]['tokens_per_s'], 1) for c in order), NA, NA, NA, NA])
        table.append(['Chat, CPU threads', 'First token of a long message (~700 tokens), s, '
                      + ' / '.join(names[c] for c in order),
                      ' / '.join(_spread(threads['stats'][c]['long_message_first_token_s'], 2) for c in order),
                      NA, NA, NA, NA])
    cold = chat.get('cold') or {}
    if 'app_runs' in cold:
        goal = targets.get('cold_first_token_s')
        table.append([f'Chat, cold start ({cold["repeat"]}×)',
                      'First message after a plain start (model on standby): request → first words, s',
                      _spread(cold['app_request_to_first_words_s'], 2), NA, NA, _target_text(goal, ' s'), _met(goal)])
        table.append(['Chat, cold start', 'Launch → first words, s, vs llama_cpp.server launch → first token',
                      _spread(cold['app_launch_to_first_words_s'], 2), _spread(cold['server_launch_to_first_token_s'], 2),
                      _num(ratio_of(cold['app_launch_to_first_words_s'], cold['server_launch_to_first_token_s'])),
                      NA, NA])
    memory = chat.get('memory') or {}
    if 'app_idle_rss_mib' in memory:
        goal = targets.get('idle_rss_mib')
        table.append(['Chat, memory, 1 browser window', 'RSS, MiB, idle with no model loaded, vs llama_cpp.server idle',
                      _spread(memory['app_idle_rss_mib'], 1), _spread(memory.get('server_idle_rss_mib'), 1),
                      _num(ratio_of(memory['app_idle_rss_mib'], memory.get('server_idle_rss_mib'))),
                      _target_text(goal, ' MiB') + ' (max)', _met(goal)])
        goal = targets.get('rss_after_unload_mib')
        table.append(['Chat, memory', 'RSS, MiB, with the model loaded / after unloading it',
                      f'{_spread(memory["app_loaded_rss_mib"], 1)} / {_spread(memory["app_after_unload_rss_mib"], 1)}',
                      NA, NA, _target_text(goal, ' MiB') + ' (after, max)', _met(goal)])
    long = chat.get('long') or {}
    if 'replay' in long:
        goal = targets.get('long_first_token_s')
        before = long['messages_before_measured']
        table.append([f'Chat, long conversation (messages {before[0] + 1}–{before[-1] + 1})',
                      'First token, s (request → first words), p50 (max)',
                      f'{_num(long["app_request_to_first_words_s"].get("p50"))} '
                      f'({_num(long["app_request_to_first_words_s"].get("max"))})', NA, NA,
                      _target_text(goal, ' s') + ' (p50)', _met(goal)])
        rules = long['replay']['rules']
        if {'kept_beginning', 'drop_one_per_message'} <= set(rules):
            kept, dropped = rules['kept_beginning'], rules['drop_one_per_message']
            table.append(['Chat, long conversation, replayed on the wrapper',
                          'Prompt tokens evaluated of the prompt, p50: kept beginning vs the rule before',
                          f'{_num(kept["evaluated"].get("p50"), 0)} of {_num(kept["prompt_tokens"].get("p50"), 0)}',
                          f'{_num(dropped["evaluated"].get("p50"), 0)} of '
                          f'{_num(dropped["prompt_tokens"].get("p50"), 0)}', NA, NA, NA])
            table.append(['Chat, long conversation, replayed on the wrapper',
                          'First token, s, p50 (max): kept beginning vs the rule before',
                          f'{_num(kept["first_token_s"].get("p50"))} ({_num(kept["first_token_s"].get("max"))})',
                          f'{_num(dropped["first_token_s"].get("p50"))} ({_num(dropped["first_token_s"].get("max"))})',
                          _num(ratio_of(kept['first_token_s'], dropped['first_token_s']), 3), NA, NA])
    return table


def ratio_of(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """The ratio of two medians."""
    if not a or not b or not a.get('n') or not b.get('n') or not b.get('p50'):
        return None
    return a['p50'] / b['p50']


def _spread_range(stats: dict[str, Any]) -> str:
    if not stats or not stats.get('n'):
        return NA
    return f'{_num(stats["min"])}–{_num(stats["max"])}'


def markdown(results: dict[str, Any]) -> str:
    machine = results['machine']
    versions = machine['versions']
    lines = [
        f'Run {results["mode"]} on {machine["date"][:10]} with `{results["command"]}`.',
        f'Machine: {machine["cpu_model"]}, {machine["logical_cores"]} logical cores, {machine["ram_gib"]} GiB RAM, '
        f'{machine["os"]}; Python {machine["python"]}, NiceGUI {versions.get("nicegui")}, '
        f'Glances {versions.get("glances")}, llama-cpp-python {versions.get("llama_cpp_python")}, '
        f'{machine.get("chromium") or "no Chromium"}. Load average at start / end: '
        f'{" ".join(str(v) for v in machine["load_average_at_start"])} / '
        f'{" ".join(str(v) for v in results.get("load_average_at_end", []))}.',
        _source_line(machine.get('source') or {}),
        '',
        'Values are p50 (p10–p90 over the repetitions; min–max when there are fewer than 5).',
        '',
        '| Benchmark | Measure | J.A.R.V.I.S. | Peer | Ratio app/peer | Target | Met |',
        '| --- | --- | --- | --- | --- | --- | --- |',
    ]
    lines += ['| ' + ' | '.join(cell.replace('|', '\\|') for cell in row) + ' |' for row in rows(results)]
    notes = results.get('notes') or []
    if notes:
        lines.append('')
        lines += [f'- {note}' for note in notes]
    return '\n'.join(lines) + '\n'


def _source_line(source: dict[str, Any]) -> str:
    if not source.get('commit'):
        return ''
    changed = source.get('changed_files') or []
    return (f'Measured: commit {source["commit"]}'
            + (f' with uncommitted changes in {", ".join(changed)}.' if changed else ' (clean working tree).'))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write(results: dict[str, Any], json_path: Path, md_path: Path) -> str:
    text = markdown(results)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for path, content in ((json_path, json.dumps(_clean(results), indent=2, sort_keys=False) + '\n'), (md_path, text)):
        temporary = path.with_name(path.name + '.tmp')
        temporary.write_text(content, encoding='utf-8')
        os.replace(temporary, path)
    return text
