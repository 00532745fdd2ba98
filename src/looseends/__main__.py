"""`python -m looseends`: the command-line tool."""

from looseends.frontends.cli import main_exit

main_exit()
