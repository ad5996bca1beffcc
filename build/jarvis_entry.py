"""The frozen app's entry point (PyInstaller runs this file as ``__main__`` inside the bundle).

``multiprocessing.freeze_support()`` must come first: NiceGUI's native window is a spawned child
process, and in a bundle that child re-runs this executable with multiprocessing's own arguments.
freeze_support() (PyInstaller's version, which works on every OS) runs the child's task and exits
before anything else of the app starts.
"""
import multiprocessing
import sys

if __name__ == '__main__':
    multiprocessing.freeze_support()
    from jarvis.cli import main
    sys.exit(main())
