"""The app as ``jarvis --no-open`` runs it (``jarvis.app.run``), plus a benchmark-only route that
publishes synthetic events on the hub from the event loop at a controlled rate.

    python benchmarks/app_with_publisher.py --port 8123 --data-dir /tmp/data --no-default-model

``POST /bench/publish`` {"rate": events/s, "seconds": s, "kind": "chat" | "notification",
"timestamps": false} publishes ``rate * seconds`` events spread evenly over ``seconds`` (when the
loop wakes up late, the events that are due go out together) and answers when done with
{"published", "seconds", "rate", "lag_max_s", "timestamps"?}. Every event carries its sequence
number: ``chat`` events are user ``ChatMessage``s with id ``bench-<seq>`` (nothing on the System
view reacts to them), ``notification`` events are ``Notification``s "bench#<seq>#" (every window
shows them as a toast). Nothing here is part of the product: it only lives in benchmarks/.

``POST /bench/profile`` {"action": "start"} starts a cProfile of the event loop's thread (where the
hub, the API and NiceGUI run); {"action": "stop", "path": FILE} writes it (for pstats) and answers
the 25 functions with the most own time.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--data-dir', type=Path, required=True)
    parser.add_argument('--no-default-model', action='store_true')
    parser.add_argument('--log-level', default='INFO')
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format='%(asctime)s %(levelname)s %(name)s: %(message)s')

    from jarvis.config import DEFAULT_HOST, Settings  # pylint: disable=import-outside-toplevel
    settings = Settings(host=DEFAULT_HOST, port=args.port, access_token=None,
                        load_default_model=not args.no_default_model,
                        data_dir=args.data_dir.expanduser().resolve())
    os.environ.setdefault('NICEGUI_STORAGE_PATH', str(settings.data_dir / 'nicegui'))  # as jarvis.cli does

    from nicegui import app  # pylint: disable=import-outside-toplevel

    import jarvis.app  # pylint: disable=import-outside-toplevel
    from jarvis.events import ChatMessage, Notification  # pylint: disable=import-outside-toplevel

    # jarvis.app.run() builds the app with create_app() and serves it with its own ui.run() arguments;
    # it is called as it is, and create_app() is only wrapped to get hold of the services (the hub)
    built: dict = {}
    create_app = jarvis.app.create_app

    def create_and_keep(app_settings: Settings):  # type: ignore[no-untyped-def]
        built['services'], root = create_app(app_settings)
        return built['services'], root

    jarvis.app.create_app = create_and_keep  # type: ignore[assignment]

    @app.post('/bench/publish')
    async def publish(body: dict) -> dict:
        rate = float(body.get('rate', 100))
        seconds = float(body.get('seconds', 1))
        kind = body.get('kind', 'chat')
        keep_timestamps = bool(body.get('timestamps', False))
        total = max(1, int(round(rate * seconds)))
        start_seq = int(body.get('start_seq', 0))
        hub = built['services'].hub
        stamps: list[tuple[int, float]] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent, lag_max = 0, 0.0
        while sent < total:
            now = loop.time()
            due = min(total, int((now - started) * rate) + 1)
            if sent < due:
                lag_max = max(lag_max, now - (started + sent / rate))
            while sent < due:
                seq = start_seq + sent
                if kind == 'notification':
                    event = hub.publish(Notification(message=f'bench#{seq}#'))
                else:
                    event = hub.publish(ChatMessage(role='user', text=f'bench {seq}', id=f'bench-{seq}',
                                                    conversation_id='bench', source='bench'))
                if keep_timestamps:
                    stamps.append((seq, event.timestamp))
                sent += 1
            if sent < total:
                await asyncio.sleep(max(0.0, started + sent / rate - loop.time()))
        elapsed = loop.time() - started
        answer = {'published': sent, 'seconds': elapsed, 'rate': sent / elapsed if elapsed > 0 else None,
                  'lag_max_s': lag_max, 'time': time.time()}
        if keep_timestamps:
            answer['timestamps'] = stamps
        return answer

    profiler: list = []

    @app.post('/bench/profile')
    async def profile(body: dict) -> dict:
        import cProfile  # pylint: disable=import-outside-toplevel
        import io  # pylint: disable=import-outside-toplevel
        import pstats  # pylint: disable=import-outside-toplevel
        if body.get('action') == 'start':
            profiler[:] = [cProfile.Profile()]
            profiler[0].enable()
            return {'profiling': True}
        if not profiler:
            return {'profiling': False}
        current = profiler.pop()
        current.disable()
        if body.get('path'):
            current.dump_stats(str(body['path']))
        out = io.StringIO()
        pstats.Stats(current, stream=out).sort_stats('tottime').print_stats(25)
        return {'profiling': False, 'top': out.getvalue()}

    jarvis.app.run(settings, native=False, show=False)  # exactly what `jarvis --no-open` runs


if __name__ == '__main__':
    main()
