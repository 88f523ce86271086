"""test_hl7_parse.py — medtrust's HL7 v2 messages read by an HL7 parser the
project did not write (Debian's python3-hl7), and `medtrust hl7 listen`
driven over a real MLLP connection (clinical.md §4; threats G05, G10).

Messages come from the real encoder through the test-only `medtrust hl7
sample` command.  Checked: MSH-9/10/12/21, PID-3/PID-5, OBX-3/OBX-5/OBX-6
for PCD-01 and the PCD-04 facets, and a patient name holding `|^~\\&` and
a CR that round-trips through the escape.  The listener: ACK MSA-1/MSA-2,
de-duplication on MSH-3 + MSH-10, the output file format, the counts
printed at SIGTERM.  Exit 77 (skipped) without python3-hl7.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    import hl7
except ImportError:
    print("SKIP python3-hl7 is not installed (scripts/deps.sh)")
    sys.exit(77)

BIN = os.environ.get("MEDTRUST_BIN") or os.path.join(
    os.environ.get("MT_BUILD_DIR", "build"), "medtrust")


def sample(kind, *args):
    r = subprocess.run([BIN, "hl7", "sample", kind, *args], capture_output=True, check=True)
    return r.stdout.decode("utf-8")


def unescape(msg, s):
    return msg.unescape(str(s))


def check_pcd01():
    text = sample("pcd01", "--control-id", "MEDTRUST-77")
    m = hl7.parse(text)
    assert str(m.segment("MSH")[9]) == "ORU^R01^ORU_R01", m.segment("MSH")[9]
    assert str(m.segment("MSH")[10]) == "MEDTRUST-77"
    assert str(m.segment("MSH")[12]) == "2.6"
    assert str(m.segment("MSH")[21]) == \
        "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO", m.segment("MSH")[21]
    pid = m.segment("PID")
    assert str(pid[3]) == "MRN-0001^^^HOSP1^MR", pid[3]
    assert str(pid[5]) == "Lovelace^Ada King"
    obx = m.segments("OBX")
    assert str(obx[0][4]) == "1.0.0.0" and str(obx[0][11]) == "X"
    want = [("147842^MDC_ECG_HEART_RATE^MDC", "72", "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
            ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "97", "262688^MDC_DIM_PERCENT^MDC"),
            ("150364^MDC_TEMP_BODY^MDC", "36.50", "268192^MDC_DIM_DEGC^MDC"),
            ("150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "120", "266016^MDC_DIM_MMHG^MDC"),
            ("150022^MDC_PRESS_BLD_NONINV_DIA^MDC", "80", "266016^MDC_DIM_MMHG^MDC")]
    assert len(obx) == 1 + len(want)
    for i, (code, value, unit) in enumerate(want, start=1):
        assert str(obx[i][3]) == code, (i, obx[i][3])
        assert str(obx[i][4]) == "1.0.0.%d" % i
        assert str(obx[i][5]) == value, (i, obx[i][5])
        assert str(obx[i][6]) == unit
        assert str(obx[i][11]) == "R"
    assert str(obx[4][14]) != "" and len(obx[1]) <= 14  # NIBP episodic only
    print("pcd01: MSH-21, PID-3/5 and %d OBX parsed by python-hl7" % len(obx))


def check_pcd04():
    m = hl7.parse(sample("pcd04"))
    assert str(m.segment("MSH")[9]) == "ORU^R40^ORU_R40"
    assert str(m.segment("MSH")[21]).split("^")[2] == "1.3.6.1.4.1.19376.1.6.1.4.1"
    assert str(m.segment("OBR")[4]) == "196616^MDC_EVT_ALARM^MDC"
    assert str(m.segment("OBR")[29]) == "alert-7"
    obx = m.segments("OBX")
    facets = {str(o[4]): o for o in obx}
    assert str(facets["1.0.0.1.1"][3]) == "196616^MDC_EVT_ALARM^MDC"
    assert str(facets["1.0.0.1.2"][3]) == "150456^MDC_PULS_OXIM_SAT_O2^MDC"
    assert str(facets["1.0.0.1.2"][5]) == "85"
    assert str(facets["1.0.0.1.2"][6]) == "262688^MDC_DIM_PERCENT^MDC"
    assert str(facets["1.0.0.1.2"][7]) == "90-100"
    for sub, code, value in [("3", "68481", "start"), ("4", "68482", "active"),
                             ("5", "68483", "enabled"), ("6", "68484", "PH"),
                             ("7", "68485", "SP")]:
        o = facets["1.0.0.1." + sub]
        assert str(o[3]).split("^")[0] == code and str(o[5]) == value, (sub, o)
        assert str(o[11]) == "F"
    print("pcd04: 7 facets parsed by python-hl7")


def check_escape():
    name = "O'Brien|^~\\&\rX Smith"
    m = hl7.parse(sample("pcd01", "--name", name))
    assert len(m.segments("PID")) == 1 and len(m.segments("OBX")) == 6
    pid5 = m.segment("PID")[5]
    comps = str(pid5).split("^")
    assert len(comps) == 2, comps
    family, given = unescape(m, comps[0]), unescape(m, comps[1])
    assert family == "Smith", family
    raw = str(pid5)
    assert raw == "Smith^O'Brien\\F\\\\S\\\\R\\\\E\\\\T\\\\X0D\\X", raw
    assert given == "O'Brien|^~\\&\rX", repr(given)  # the round trip
    r = subprocess.run([BIN, "hl7", "sample", "pcd01", "--name", "bad\x01name"],
                       capture_output=True)
    assert r.returncode == 2 and b"refused" in r.stderr, r
    print("escape: delimiters and CR in a name stay inside PID-5")


def frame(msg):
    return b"\x0b" + msg.encode() + b"\x1c\r"


def read_frame(s):
    buf = b""
    s.settimeout(5)
    while not buf.endswith(b"\x1c\r"):
        chunk = s.recv(4096)
        assert chunk, "listener closed"
        buf += chunk
    assert buf[0:1] == b"\x0b"
    return buf[1:-2].decode()


def check_listener(tmp):
    out = os.path.join(tmp, "received.hl7")
    p = subprocess.Popen([BIN, "hl7", "listen", "--port", "0", "--out", out],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.strip().rsplit(":", 1)[1])
        msgs = [sample("pcd01", "--control-id", "MEDTRUST-%d" % i) for i in (1, 2)]
        with socket.create_connection(("127.0.0.1", port)) as s:
            for m in msgs + [msgs[0]]:  # the third is a duplicate
                s.sendall(frame(m))
                ack = hl7.parse(read_frame(s).replace("\r", "\r"))
                assert str(ack.segment("MSH")[9]).startswith("ACK")
                assert str(ack.segment("MSA")[1]) == "AA"
                assert str(ack.segment("MSA")[2]) == str(hl7.parse(m).segment("MSH")[10])
                assert "IHE" not in str(ack.segment("MSH"))
        # G05: garbage outside a frame drops that connection, nothing recorded
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(5)
            assert s.recv(100) == b""
        time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert b"received=2 duplicates=1 answered=3 dropped=1" in rest, rest
    data = open(out, "rb").read()
    got, off = [], 0
    while off < len(data):
        nl = data.index(b"\n", off)
        n = int(data[off:nl])
        got.append(data[nl + 1:nl + 1 + n].decode())
        assert data[nl + 1 + n:nl + 2 + n] == b"\n"
        off = nl + 2 + n
    assert got == msgs, got
    print("listen: 3 messages, 2 recorded, 1 duplicate acknowledged, 1 garbage connection dropped")


def check_listener_none(tmp):
    out = os.path.join(tmp, "none.hl7")
    p = subprocess.Popen([BIN, "hl7", "listen", "--port", "0", "--out", out, "--answer", "none"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(p.stdout.readline().decode().strip().rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(frame(sample("pcd04")))
            s.settimeout(0.7)
            try:
                data = s.recv(100)
            except socket.timeout:
                data = None
            assert data is None, data
    finally:
        p.send_signal(signal.SIGTERM)
        rest, _ = p.communicate(timeout=10)
    assert b"received=1 duplicates=0 answered=0" in rest, rest
    print("listen --answer none: no answer")


def main():
    if not os.path.exists(BIN):
        print("FAIL no medtrust binary at %s" % BIN)
        return 1
    check_pcd01()
    check_pcd04()
    check_escape()
    with tempfile.TemporaryDirectory() as tmp:
        check_listener(tmp)
        check_listener_none(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
