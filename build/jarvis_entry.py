"""The frozen app's entry point (PyInstaller runs this file as ``__main__`` inside the bundle).

``multiprocessing.freeze_support()`` must come first: NiceGUI's native window is a spawned child
process, and in a bundle that child re-runs this executable with multiprocessing's own arguments.
freeze_support() (PyInstaller's version, which works on every OS) runs the child's task and exits
before anything else of the app starts. A local model runs in a child process too: the bundle re-runs
itself with ``--llama-runner`` (``jarvis.models.local.RUNNER_ARGUMENT``) for it.
"""
import multiprocessing
import sys

if __name__ == '__main__':
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ['--llama-runner']:
        from jarvis.models.llama_runner import main as run_model
        run_model()
        sys.exit(0)
    from jarvis.cli import main
    sys.exit(main())
