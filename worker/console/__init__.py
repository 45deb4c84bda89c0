"""The operator web console (``invoice-sync console``): server-rendered pages over the store.

``app`` builds the aiohttp application (routes, security headers, the auth gate), ``pages``
serves the reads, ``actions`` the audited actions, ``auth`` the admin login and its signed
session, ``throttle`` the limit on failed logins, ``overview`` and ``charts`` the overview's
figures; templates in ``templates/``.
"""
