"""The outbox's JSON-RPC client: backend.chain.rpc.RpcClient (a JsonRpc per thread; `batch`
answers each call's result or its RpcError), the chain package's one hand-written client."""

from backend.chain.rpc import RpcClient

__all__ = ["RpcClient"]
