"""The web console (`lf-bulk console`): the CLI's jobs for people who upload spreadsheets.

A Starlette application built from Python (`app.create_console`), server-rendered with Jinja2
(autoescaped), that drives the same library functions, journal, locks and quota ledger as the
CLI: a run started here is an ordinary run that `lf-bulk runs list/resume` sees.

    security  token -> cookie, CSRF, body size, Host check, security headers (pure ASGI)
    templating  render(request, template, context): the shared page context and filters
    state     ConsoleState: settings, journal, API sessions (the embedded sandbox once), runner
    runner    RunManager: runs driven in background threads, their live progress
    home, runs_pages, newjob, reconcile_page, finance: the pages (each exposes `routes`)
"""
