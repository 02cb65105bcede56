# Connection protocols (asyncio.BufferedProtocol) that drive the parsers on uvloop.
