"""Load from several hosts on Dask distributed (`fastload run --cluster`, `fastload agent`).

Dask supplies membership, heartbeats, TLS and task placement; fastload adds the split of the
load over the hosts (split), the clocks (clock), the agent that runs the normal pinned engine
in a child process (agent, hostrun) and the coordinator that starts, watches, stops and merges
(coordinator). Needs the extra `fastload[cluster]`; nothing below the CLI and the API imports
this package unless a run asks for a cluster."""
