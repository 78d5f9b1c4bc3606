"""The prompt and its tokens, as TinyVLA's eval path builds them (tinyvla-format.md §1.7)."""

from __future__ import annotations

from pathlib import Path

from edge.errors import CheckpointError

SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
IMAGE_PLACEHOLDER = "<image>"
IMAGE_TOKEN_INDEX = -200
END_OF_TEXT = "<|endoftext|>"


def build_prompt(instruction: str) -> str:
    """conv `pythia` (separator style TWO) with one user turn, plus the eval's " <|endoftext|>"."""
    return f"{SYSTEM_PROMPT} USER: {IMAGE_PLACEHOLDER}\n{instruction} ASSISTANT: {END_OF_TEXT}"


class PromptTokenizer:
    """A `tokenizers` tokenizer (the base VLM's tokenizer.json) with LLaVA's image-token splice."""

    def __init__(self, tokenizer_file: Path, verified_json: bytes | None = None):
        """`verified_json`, when given, is the file's content as a bundle verified it (not re-read)."""
        from tokenizers import Tokenizer

        path = Path(tokenizer_file)
        if verified_json is None and not path.is_file():
            raise CheckpointError(f"tokenizer not found: {path} (the base VLM directory must hold tokenizer.json)")
        self.path = path
        try:
            self._tok = Tokenizer.from_str(verified_json.decode()) if verified_json is not None else Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises its own exception type for a malformed file
            raise CheckpointError(f"{path}: not a readable tokenizer: {str(e)[:200]}") from e
        self.bos_token_id = self._tok.token_to_id(END_OF_TEXT)

    def encode_text(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=True).ids

    def encode(self, prompt: str) -> list[int]:
        """LLaVA's `tokenizer_image_token`: tokenize around `<image>`, splice in −200."""
        chunks = [self.encode_text(c) for c in prompt.split(IMAGE_PLACEHOLDER)]
        ids: list[int] = []
        offset = 0
        if chunks and chunks[0] and chunks[0][0] == self.bos_token_id:
            offset = 1
            ids.append(chunks[0][0])
        for i, chunk in enumerate(chunks):
            if i > 0:
                ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(chunk[offset:])
        return ids

    def encode_instruction(self, instruction: str) -> list[int]:
        return self.encode(build_prompt(instruction))
