"""What ADD reads from outside the build context: files downloaded from URLs (`http.py`) and git checkouts
(`git.py`). The worker calls them to key a step (the content's digest, the commit a ref resolves to) and to give
the step the files."""
