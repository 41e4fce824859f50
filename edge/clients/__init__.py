"""Clients of the systems outside the edge, one typed client each: the ResourceManager, WebHDFS, Enterprise Gateway.

Each raises its own error type; the services translate them to public errors once.  Authentication
to Hadoop plugs in here, one seam per client.
"""
