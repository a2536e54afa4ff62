"""What a single-node multi-process trainer needs of the network, and what it must not have.

Loopback TCP between two endpoints (torch.distributed's TCPStore, ZMQ, Ray, Dask do this),
getaddrinfo with AI_ADDRCONFIG (it opens a NETLINK_ROUTE socket), no route to any other
address, a raw packet socket refused (a probe: counted, the job still succeeds). Prints one
JSON object on stdout (the runner test reads it from the sealed outputs and the logs)."""
import errno
import json
import os
import socket
import threading

result = {}


def loopback_pair(family, host):
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen(1)
    port = server.getsockname()[1]

    def echo():
        conn, _ = server.accept()
        conn.sendall(conn.recv(64).upper())
        conn.close()

    t = threading.Thread(target=echo)
    t.start()
    client = socket.create_connection((host, port), timeout=5)
    client.sendall(b"ping")
    reply = client.recv(64).decode()
    client.close()
    t.join()
    server.close()
    return reply


def egress(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(addr)
        return "CONNECTED"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


def udp_egress(family, addr):
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.sendto(b"pii", addr)
        return "SENT"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


result["tcp4"] = loopback_pair(socket.AF_INET, "127.0.0.1")
result["tcp6"] = loopback_pair(socket.AF_INET6, "::1")
result["addrconfig"] = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80, flags=socket.AI_ADDRCONFIG)})
result["egress_tcp4"] = egress(socket.AF_INET, ("192.0.2.1", 80))
result["egress_tcp6"] = egress(socket.AF_INET6, ("2001:db8::1", 80))
result["egress_udp4"] = udp_egress(socket.AF_INET, ("8.8.8.8", 53))
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    result["packet"] = "OPENED"
except OSError as e:
    result["packet"] = errno.errorcode.get(e.errno, str(e.errno))
result["affinity"] = len(os.sched_getaffinity(0))
result["cpu_count"] = os.cpu_count()
result["threads_env"] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
print(json.dumps(result, sort_keys=True), flush=True)
with open("/out/net.json", "w") as f:
    json.dump(result, f, sort_keys=True)
