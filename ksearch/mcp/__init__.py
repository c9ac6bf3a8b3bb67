"""The MCP server agents use: skills and ISA chapters as resources; compile, evaluate (the harness a
search uses), submit (an attempt in a run's log, proposed by the agent) and read-only log tools.

Built on the official MCP Python SDK (`pip install -e '.[mcp]'`); `ksearch mcp` starts it. The SDK is
imported by ksearch.mcp.server only, so the sandbox, the limits and the tools' bodies load without it.
"""
