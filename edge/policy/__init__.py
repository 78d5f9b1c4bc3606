"""The TinyVLA policy as the runtime executes it: network, sampler, preprocessing, loading.

Import the module you need. The control process imports only the torch-free ones:
`edge.policy.contract` (the predictor protocol), `edge.policy.actions` (numpy decoding) and
`edge.policy.config` (pydantic); the rest load torch, which only the model process needs."""
