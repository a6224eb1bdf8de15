"""``python -m agent`` runs the same CLI as ``voxdesk``."""

from agent.cli import main

main()
