"""`wakaq-web`: the dashboard (overview, daemons, failed, eta, schedules) and `/metrics`, in one process.

Needs the `web` extra (`pip install 'wakaq-rs[web]'`, i.e. waitress); workers, schedulers and producers never import
this package. See server.py for the command line and security.py for the guards.
"""
