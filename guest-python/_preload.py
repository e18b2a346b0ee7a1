"""The standard library modules a Python guest can import at run time.

componentize-py snapshots the interpreter after importing the app, and a
guest has no files: a module not imported here is missing at run time
(`ModuleNotFoundError`). So this imports the usual standard library at
build time; `mpwasm` builds the component once for every program. Modules
that need threads, sockets or subprocesses import, but fail when used.
"""

import importlib

MODULES = """
__future__ abc argparse array ast base64 binascii bisect builtins bz2 calendar cmath codecs
collections collections.abc colorsys contextlib contextvars copy copyreg csv dataclasses datetime
decimal difflib dis enum errno fnmatch fractions functools gc getopt gettext glob graphlib gzip
hashlib heapq hmac html html.entities html.parser http http.client importlib importlib.abc
importlib.machinery importlib.metadata importlib.resources importlib.util inspect io ipaddress
itertools json json.decoder json.encoder keyword linecache locale logging logging.handlers lzma
marshal math mimetypes numbers opcode operator os os.path pathlib pickle pkgutil platform
pprint queue quopri random re reprlib sched secrets select selectors shlex shutil signal site
socket stat statistics string stringprep struct subprocess sys sysconfig tarfile tempfile
textwrap threading time timeit token tokenize tomllib trace traceback types typing
unicodedata urllib urllib.parse urllib.request uuid warnings weakref xml xml.dom
xml.dom.minidom xml.etree xml.etree.ElementTree xml.sax zipfile zlib zoneinfo
asyncio concurrent concurrent.futures email email.message email.parser email.utils
encodings.idna encodings.utf_16 encodings.utf_32 encodings.latin_1 encodings.ascii
encodings.cp437 string.templatelib annotationlib compression compression.zstd
""".split()

MISSING = []
for _name in MODULES:
    try:
        importlib.import_module(_name)
    except Exception as _e:  # noqa: BLE001 - a module this build lacks is listed, not fatal
        MISSING.append((_name, f"{type(_e).__name__}: {_e}"))
