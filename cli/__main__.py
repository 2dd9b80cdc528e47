"""``python -m vqa_rt.cli`` runs the ``vqa-rt`` command."""

from vqa_rt.cli.app import main

main()
