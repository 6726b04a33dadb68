"""fsllm-sim: split federated LoRA fine-tuning of a real LLM over a simulated wireless network."""
__version__ = "0.1.0"
