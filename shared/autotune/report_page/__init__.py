"""The validation report as one self-contained HTML page (no script, no external style, font
or image), written beside the JSON report and by `autotune validate --html`.

Importing this package loads no template engine: Jinja2 is imported on the first render, so
the validate function's cold start does not pay for it.
"""

from autotune.intake.objects import html_report_name
from autotune.report_page.page import page_view, render_report_page

__all__ = ["html_report_name", "page_view", "render_report_page"]
