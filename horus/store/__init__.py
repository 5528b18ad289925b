"""The job store: the durable record of every job, the source of truth.

- :mod:`~horus.store.keys`: every key name.
- :mod:`~horus.store.records`: the record of a job and every read of the store.
- :mod:`~horus.store.lifecycle`: every write that changes a job's status, and the one end of
  a job (its scripts are ``lua/*.lua``, loaded by :mod:`~horus.store.scripts`).
- :mod:`~horus.store.retry`: the one retry decision.
- :mod:`~horus.store.workers`: the registry of live workers.
- :mod:`~horus.store.audit`: the audit trail, a subscriber of the job events.
"""
