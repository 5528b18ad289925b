"""Trust: keys, signing, sealed secrets, the policy, and the gate every job passes.

- :mod:`~horus.trust.keys`: ed25519 key files and their public text.
- :mod:`~horus.trust.signing`: the signed bytes of a job and of a cancel request.
- :mod:`~horus.trust.sealing`: secrets sealed to the workers' key, and masking them.
- :mod:`~horus.trust.policy`: who may run what where (the TOML file workers reload).
- :mod:`~horus.trust.gate`: the checks, in order, shared by the client and the worker.
- :mod:`~horus.trust.bootstrap`: the keys and starter policy of a first run.
"""
