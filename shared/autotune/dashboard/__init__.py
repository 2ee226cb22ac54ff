"""The live pipeline page: every upload, the queue, the job slots, each job and the event stream.

`view` turns what the ledger, the bucket listing and the event subscription hold into the page's
data (pure); `source` reads those through the adapters the functions use; `app` is the read-only
Flask application; `serve` runs it (`autotune up` starts it, `autotune dashboard` serves it for a
deployed project).
"""
