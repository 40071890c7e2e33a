"""The PPP paper's reward code, transcribed as it stands, to check the ``paper`` profile against.

From envs/userville.py of github.com/sunnweiwei/PPP-Agent (commit 42a46d7):
REWARD_FUNCTIONS and UserReward.calculate_preference_reward, copied without
change but for layout; R_Proact from the paper's Section 5.1 ("+0.05 if all
queries are low-effort; -0.1 for each medium-effort query and -0.5 for each
high-effort query"), with the code's "no ask, no cost" (calculate_cost_reward
subtracts nothing and adds no bonus when the agent never asked).

A trajectory is handed over as the simulator saw it: one entry per agent
message, each either None (no ask) or (cost level 1..3, the preferences whose
reward rule tagged this ask ``[Reward 0]``).
"""

from __future__ import annotations

REWARD_FUNCTIONS = {
    'no_preference': None,
    'concise_question': lambda messages, stats, is_vague: - 0.1 * stats['reward_0'],
    'detail_question': lambda messages, stats, is_vague: - 0.1 * stats['reward_0'],
    'answer_more': lambda messages, stats, is_vague: min(1 * (stats['ask_turn'] - 3), 0),
    'only_begin': lambda messages, stats, is_vague: - int('ask_question' in str(messages[3:])),
    'no_ask': lambda messages, stats, is_vague: - int(stats['ask_turn'] > 0),
    'do_selection': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'professional': None,
    'amateur': lambda messages, stats, is_vague: - 0.1 * stats['reward_0'],
    'ask_many': lambda messages, stats, is_vague: - int(stats['ask_turn'] > 1),
    'one_question': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'first_try': lambda messages, stats, is_vague: - 0.1 * stats['reward_0'],
    'lang_ita': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'lang_multi': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'capital': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'commas': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'json': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'joke': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'snippet': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
    'length': lambda messages, stats, is_vague: - 0.5 * stats['reward_0'],
}


def calculate_preference_reward(reward_functions, messages, stats, preference_name, is_vague):
    pref_reward = 0
    if preference_name and preference_name in reward_functions:
        reward_fn = reward_functions[preference_name]
        if reward_fn is not None:
            preference_reward = reward_fn(messages, stats, is_vague)
            pref_reward = pref_reward + preference_reward
            if is_vague and stats['if_ask'] != 0 and preference_reward == 0:
                pref_reward = pref_reward + 0.05
            return pref_reward
    return pref_reward


def _messages(agent_messages):
    """The conversation as the environment keeps it: system, user, then the agent's
    messages, each ask answered by the simulator's observation."""
    messages = [{'role': 'system', 'content': 'system'}, {'role': 'user', 'content': 'task'}]
    for ask in agent_messages:
        if ask is None:
            messages.append({'role': 'assistant', 'content': 'working'})
            messages.append({'role': 'user', 'content': 'EXECUTION RESULT'})
        else:
            messages.append({'role': 'assistant', 'content': '<function=ask_question>...'})
            messages.append({'role': 'user', 'content': 'the simulated answer [Cost 1]'})
    return messages


def stats_for(agent_messages, preference_name):
    asks = [a for a in agent_messages if a is not None]
    stats = {'ask_turn': len(asks), 'if_ask': int(bool(asks)), 'level_sum': 0,
             'reward_0': 0, 'reward_1': 0}
    for level in range(1, 6):
        stats[f'level_{level}'] = 0
    for level, rejected in asks:
        stats[f'level_{level}'] += 1
        stats['level_sum'] += level
        if preference_name in rejected:
            stats['reward_0'] += 1
        else:
            stats['reward_1'] += 1
    return stats


def r_proact(agent_messages):
    stats = stats_for(agent_messages, None)
    if stats['if_ask'] == 0:
        return 0
    bonus = 0.05 if stats['level_2'] == 0 and stats['level_3'] == 0 else 0
    return bonus - 0.1 * stats['level_2'] - 0.5 * stats['level_3']


def r_pers(agent_messages, preference_names, is_vague=True):
    messages = _messages(agent_messages)
    return sum(
        calculate_preference_reward(REWARD_FUNCTIONS, messages, stats_for(agent_messages, name), name, is_vague)
        for name in preference_names
    )
