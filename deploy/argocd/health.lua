-- Argo CD health check of vpn.alicloud.dev/VpnPbrRoute (vpn-pbr-operator).
--
-- The route's status follows kstatus (sigs.k8s.io/cli-utils pkg/kstatus): status.observedGeneration,
-- and the conditions Reconciling (a change is under way) and Stalled (refused until someone
-- acts) beside Ready and Synced, each only while true. Argo CD reports a route being deleted
-- as Progressing ("Pending deletion") itself, before this script runs.
-- Install: docs/gitops.md. Checked against kstatus by tests/gitops_health.rs.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is(c, status)
  return c ~= nil and c.status == status
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. obj.metadata.generation
  return hs
end

local synced = condition("Synced")
if is(synced, "False") and synced.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = synced.message
  return hs
end
-- Refused until someone acts, or a change under way (the operator never says both).
for _, verdict in ipairs({ { "Stalled", "Degraded" }, { "Reconciling", "Progressing" } }) do
  local c = condition(verdict[1])
  if is(c, "True") then
    hs.status = verdict[2]
    hs.message = c.reason .. ": " .. c.message
    return hs
  end
end
-- ObserveOnly: the cloud entry differs from the spec, and the operator does not change it.
if is(synced, "False") and synced.reason == "Drift" then
  hs.status = "Degraded"
  hs.message = "Drift: " .. synced.message
  return hs
end
local ready = condition("Ready")
if is(ready, "True") then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = ready.reason .. ": " .. ready.message
else
  hs.message = "Waiting for the operator"
end
return hs
