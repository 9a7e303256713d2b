"""`python -m flexearn`: the flexearn command, for when its script is not on PATH."""

from flexearn.cli import main

main(prog_name="flexearn")
