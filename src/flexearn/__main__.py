"""`python -m flexearn`: the flexearn command, for when its script is not on PATH."""

from flexearn.cli import main

if __name__ == "__main__":  # not when imported (a test walking every module imports this one)
    main(prog_name="flexearn")
