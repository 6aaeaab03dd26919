"""The Ankaios v1.0.1 dialect: the one place that knows grpc_api, ank_base and control_api.

* :mod:`.conversion` translates the server stream (``grpc_api.FromServer`` /
  ``grpc_api.ToServer``) to and from the domain model;
* :mod:`.control_codec` translates a workload's control-interface frames
  (``control_api.ToAnkaios`` / ``control_api.FromAnkaios``).

The core (manager, scheduler, workload loops, runtimes, relay I/O) sees only
domain types and never imports this package's generated code.
"""
