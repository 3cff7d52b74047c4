"""Shared pieces of the pipelines tests: a diffusers-like declaration and API clients."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from generation.services.tokens import worker_token_create

# A text-to-video diffusion model's space, as examples/diffusers_worker.py declares it.
DIFFUSERS = {
    "properties": {
        "num_inference_steps": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 25,
            "x-step": 1,
            "x-affects": {"visual_quality": "+", "generation_seconds": "+"},
            "x-cost": True,
        },
        "guidance_scale": {
            "type": "number",
            "minimum": 1.0,
            "maximum": 20.0,
            "default": 6.0,
            "x-scale": "log",
        },
        "num_frames": {"type": "integer", "minimum": 8, "maximum": 49, "default": 16},
        "scheduler": {"type": "string", "enum": ["ddim", "euler", "dpm"], "default": "ddim"},
        "negative_prompt": {"type": "string", "default": "blurry", "x-tunable": False},
        "seed": {"type": "integer", "default": 0, "x-tunable": False},
    }
}


def declaration(**changes: dict) -> dict:
    """DIFFUSERS with some properties replaced (a value of None removes the property)."""
    result = copy.deepcopy(DIFFUSERS)
    for name, spec in changes.items():
        if spec is None:
            result["properties"].pop(name)
        else:
            result["properties"][name] = spec
    return result


def body(parameters: dict | None = None, **fields: str) -> dict:
    return {
        "name": fields.get("name", "Diffusers"),
        "description": fields.get("description", "A text-to-video diffusion model"),
        "parameters": DIFFUSERS if parameters is None else parameters,
    }


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


def worker(name: str, *patterns: str) -> APIClient:
    token, key = worker_token_create(name=name, pipelines=list(patterns))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.token = token
    return client


@pytest.fixture
def gpu(db) -> APIClient:
    """A worker token allowed the diffusers pipelines."""
    return worker("gpu-1", "diffusers", "diffusers-*")


@pytest.fixture
def admin_api(db) -> APIClient:
    client = APIClient()
    client.force_login(
        get_user_model().objects.create(username="boss", is_staff=True, is_superuser=True)
    )
    return client
