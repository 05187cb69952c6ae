"""A statsd listener standing in for the CloudWatch agent: appends every datagram on PORT (IPv4 and IPv6) to FILE.

usage: statsd_listener.py PORT FILE SECONDS
"""
import socket
import sys
import time


def main(port: str, path: str, seconds: str) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(port)))
    s.settimeout(1)
    end = time.monotonic() + float(seconds)
    with open(path, "a") as out:
        while time.monotonic() < end:
            try:
                out.write(s.recv(65535).decode() + "\n")
                out.flush()
            except TimeoutError:
                pass


if __name__ == "__main__":
    main(*sys.argv[1:])
