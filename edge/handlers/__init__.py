"""The edge's HTTP handlers: thin (parse, call one service method, answer JSON); routes in routes.py."""
