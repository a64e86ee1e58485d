import re

from setuptools import find_packages, setup

setup(
    name="condense",
    version=re.search(r'__version__ = "([^"]+)"', open("condense/version.py", encoding="utf-8").read()).group(1),
    description="Dataset distillation toolkit: synthesize, evaluate and audit tiny synthetic training sets.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # eval/protocols/*.json ships inside the package as condense/protocols (read when not in a checkout)
    packages=find_packages(include=["condense", "condense.*"]) + ["condense.protocols"],
    package_dir={"condense.protocols": "eval/protocols"},
    # condense/evaluation/published.json: the papers' figures the zoo shows beside its own
    package_data={"condense.protocols": ["*.json"], "condense.evaluation": ["published.json"]},
    install_requires=[
        "torch>=2.6",          # torch.load(weights_only=True) had a known bypass before 2.6
        "torchvision>=0.21",
        "kornia>=0.7",
        "h5py>=3.8",
        "rich>=13",
        "faiss-cpu>=1.7.4",
        "mlxtend>=0.22",
        "scikit-learn>=1.2",
        "matplotlib>=3.7",
        "numpy>=1.24",
        "scipy>=1.10",         # membership-inference statistics (the audit)
    ],
    extras_require={
        "dev": ["pytest>=7", "pytest-xdist>=3"],
        "gpu": ["faiss-gpu>=1.7.2"],
        # scripts/ddranking_check.py; keeps torch as installed, but pins numpy<2 and scipy<1.16: use its own venv
        "ddranking": ["ddranking==0.2.0"],
    },
    entry_points={"console_scripts": ["condense=condense.cli:main"]},
)
