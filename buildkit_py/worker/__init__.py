from .local import LocalWorker

__all__ = ["LocalWorker"]
