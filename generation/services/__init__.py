"""Writes for generations, one module per concept:

- ``requests``: queue a generation (a server render or a job for workers), idempotently;
- ``claims``: take a waiting generation with a lease (the one conditional UPDATE that decides);
- ``rendering``: render a claimed generation on the site's own workers;
- ``leases``: remote workers' jobs — claim, heartbeat, fail, complete with an upload;
- ``uploads``: check an uploaded video and poster before anything is stored;
- ``outcomes``: how a generation ends (succeeded or failed) and what follows;
- ``metrics``: the server's measurements of a finished video, and a worker's own;
- ``tokens``: worker API tokens.
"""
