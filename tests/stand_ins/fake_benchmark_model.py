"""A stand-in for LiteRT's benchmark_model on a phone: prints a recorded output sample
(tests/fixtures/benchmark_model/) chosen by the delegate flag, or failed.txt for a graph whose
name says broken; exits 1 after a failure, as the tool does."""
import os
import sys

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "benchmark_model")
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if "=" in a)
if "broken" in args.get("graph", ""):
    name = "failed.txt"
elif args.get("use_gpu") == "true":
    name = "gpu_partial.txt"
elif args.get("use_nnapi") == "true":
    name = "nnapi_none.txt"
else:
    name = "xnnpack.txt"
sys.stdout.write(open(os.path.join(FIXTURES, name)).read())
sys.exit(1 if name == "failed.txt" else 0)
