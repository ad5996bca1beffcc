import multiprocessing
import sys

if __name__ == '__main__':
    multiprocessing.freeze_support()  # first: a frozen bundle's child processes start here
    from jarvis.cli import main
    sys.exit(main())
