"""A hand-checkable problem shared by the solver tests (2 clients, 3 + 2 subchannels)."""
from fsllm_sim.convergence import ConvergenceModel
from solvers.problem import Problem, SplitRankProfile

N0 = 1e-20


def tiny_problem(**over):
    """2 clients, 3 + 2 subchannels, numbers chosen so the objective can be computed by hand."""
    prof = SplitRankProfile(splits=[1, 2], ranks=[1, 4],
                            client_forward_flops=[[1e9, 1e9], [2e9, 2e9]],
                            client_backward_flops=[[2e9, 2e9], [4e9, 4e9]],
                            server_flops=[[6e9, 6e9], [3e9, 3e9]],
                            activation_bits=[[8e6, 8e6], [8e6, 8e6]],
                            adapter_bits=[[1e6, 4e6], [2e6, 8e6]])
    args = dict(gain_s=[[1e-10, 2e-10, 1e-12], [3e-11, 1e-10, 5e-11]], gain_f=[[1e-10, 1e-11], [2e-11, 1e-10]],
                bandwidth_s_hz=1e6, bandwidth_f_hz=[1e6, 2e6], noise_psd_w_per_hz=N0, p_max_w=0.1,
                local_iterations=3, device_flops_per_s=[1e9, 2e9], server_flops_per_s=3e9,
                downlink_rate_bps=[16e6, 8e6], broadcast_rate_bps=4e6, aggregation_time_s=0.25,
                profile=prof, convergence=ConvergenceModel(a=10.0, b=20.0, c=1.0, source="test"))
    args.update(over)
    return Problem(**args)
