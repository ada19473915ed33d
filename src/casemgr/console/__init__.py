"""The officers' web console: server-rendered pages (Jinja, HTMX) on the same services as the API.

A console session is an ordinary session of the session store, carried in an HttpOnly, Secure,
SameSite=Strict cookie instead of an Authorization header; every form that changes something
carries a CSRF token derived from it. Pages send a Content-Security-Policy that allows no inline
script. Labels come from the message catalogs in messages/ (zh-CN by default, English by a switch).
"""
