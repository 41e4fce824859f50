"""`python -m yardlab.hub_service`: how the hub starts the managed service."""
from .app import main

main()
