"""`perfsim ui`: a local web page to explore a step or an op on one or two devices (docs/ui.md).

view.py turns the page's inputs into one perfsim.api call per device and the payload the page draws; app.py
serves the page (static/) and that payload over HTTP with Starlette.
"""
