"""Installs WattChain's Python packages and compiles the matcher's Cython core."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

extensions = [
    Extension(
        "matcher._auction",
        ["matcher/_auction.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
]

setup(
    name="wattchain",
    version="0.1.0",
    description="A peer-to-peer electricity market on a Substrate appchain",
    packages=find_packages(include=["matcher*", "meter_bridge*", "offchain*", "api*", "load_tests*"]),
    package_data={"api": ["static/*"]},
    ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}),
    python_requires=">=3.11",
    install_requires=[
        "numpy>=1.26",
        "ortools>=9.10",
        "pymodbus>=3.10,<4",
        "pyserial>=3.5",
        "substrate-interface==1.8.1",
        "py-sr25519-bindings>=0.2",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "httpx>=0.27",
        "pydantic>=2.6",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "pytest-timeout>=2.3", "locust>=2.24"],
    },
    entry_points={"console_scripts": ["wattchain = offchain.cli:main"]},
)
