// CloudFormation templates (YAML or JSON): resolves the intrinsic functions a mesh template uses
// (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`) against the
// template's own Parameters (their Default), Mappings and resources, keeping every node's line. What
// cannot be resolved from the files alone (`Fn::ImportValue`, `Fn::If`, a parameter with no Default)
// is an error naming the file and line: a guessed name would route traffic to the wrong place.
import { asList, asObj, asString, copyPosition, isObj, lineOf, type Obj, type Value } from './reader.ts'
import { ImportError } from './report.ts'

export interface CfnResource {
  logicalId: string
  type: string
  properties: Obj
  line: number
}

/** The name attribute (`VirtualNodeName`…) each App Mesh and Cloud Map type returns for GetAtt and Ref. */
const NAME_PROPERTY: Record<string, string> = {
  'AWS::AppMesh::Mesh': 'MeshName',
  'AWS::AppMesh::VirtualNode': 'VirtualNodeName',
  'AWS::AppMesh::VirtualRouter': 'VirtualRouterName',
  'AWS::AppMesh::VirtualService': 'VirtualServiceName',
  'AWS::AppMesh::Route': 'RouteName',
  'AWS::AppMesh::VirtualGateway': 'VirtualGatewayName',
  'AWS::AppMesh::GatewayRoute': 'GatewayRouteName',
  'AWS::ServiceDiscovery::PrivateDnsNamespace': 'Name',
  'AWS::ServiceDiscovery::PublicDnsNamespace': 'Name',
  'AWS::ServiceDiscovery::HttpNamespace': 'Name',
  'AWS::ServiceDiscovery::Service': 'Name',
}

/** Pseudo parameters have no value outside a stack: they resolve to a marked placeholder, reported. */
const PSEUDO: Record<string, string> = {
  'AWS::StackName': 'stack',
  'AWS::Region': 'region',
  'AWS::AccountId': '000000000000',
  'AWS::Partition': 'aws',
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackId': 'stack-id',
}

export function isTemplate(v: Value): v is Obj {
  return (
    isObj(v) &&
    isObj(v.Resources) &&
    (v.AWSTemplateFormatVersion !== undefined ||
      Object.values(v.Resources).some((r) => isObj(r) && typeof r.Type === 'string'))
  )
}

/**
 * Every resource of the template with its properties resolved. `onPseudo` hears of each pseudo
 * parameter used (its line), since its placeholder value is not the stack's.
 */
export function templateResources(
  file: string,
  template: Obj,
  onPseudo: (name: string, line: number) => void,
  /** Parameter values given on the command line (`--param Name=value`), over the template's Defaults. */
  given: Record<string, string> = {},
): CfnResource[] {
  const params = asObj(template.Parameters) ?? {}
  const mappings = asObj(template.Mappings) ?? {}
  const resources = asObj(template.Resources) ?? {}
  const resolving = new Set<string>()
  const resolvedProps = new Map<string, Obj>()

  const fail = (node: unknown, message: string): never => {
    throw new ImportError(file, lineOf(node, undefined, lineOf(template, 'Resources')), message)
  }

  const ref = (name: string, node: unknown): Value => {
    if (Object.hasOwn(PSEUDO, name)) {
      onPseudo(name, lineOf(node))
      return PSEUDO[name]!
    }
    if (name === 'AWS::NoValue') return null
    if (Object.hasOwn(given, name)) return given[name]!
    const p = asObj(params[name])
    if (p !== undefined) {
      if (p.Default === undefined)
        fail(
          node,
          `cannot resolve Ref ${name}: the parameter has no Default (pass --param ${name}=VALUE, or import the deployed resources with \`aws appmesh describe-*\`)`,
        )
      return resolve(p.Default as Value)
    }
    const res = asObj(resources[name])
    if (res !== undefined) {
      // Ref of an App Mesh resource is its ARN; ours ends in the name, which is what references need.
      const type = asString(res.Type) ?? ''
      const name2 = nameOf(name, node)
      return type.startsWith('AWS::AppMesh::')
        ? `arn:aws:appmesh:region:000000000000:${type.slice(14)}/${name2}`
        : name2
    }
    return fail(node, `cannot resolve Ref ${name}: no parameter or resource of that name in ${file}`)
  }

  const nameOf = (logicalId: string, node: unknown): string => {
    const res = asObj(resources[logicalId])
    if (res === undefined) return fail(node, `cannot resolve GetAtt ${logicalId}: no such resource`)
    const prop = NAME_PROPERTY[asString(res.Type) ?? '']
    if (prop === undefined) return fail(node, `cannot resolve a name for ${logicalId} (${String(res.Type)})`)
    const props = propsOf(logicalId, node)
    const v = asString(props[prop])
    if (v === undefined) return fail(props, `${logicalId} has no ${prop}`)
    return v
  }

  const getAtt = (args: Value, node: unknown): Value => {
    const [id, attr] = asList(args).map(asString)
    if (id === undefined || attr === undefined)
      return fail(node, 'Fn::GetAtt needs a resource and an attribute')
    const res = asObj(resources[id])
    if (res === undefined) return fail(node, `cannot resolve GetAtt ${id}.${attr}: no resource ${id}`)
    const props = propsOf(id, node)
    if (attr === 'Arn') return ref(id, node)
    if (attr === 'Uid') return fail(node, `cannot resolve GetAtt ${id}.Uid outside a deployed stack`)
    // App Mesh resources return their name properties (MeshName, VirtualNodeName…) as attributes.
    const v = props[attr]
    if (v === undefined) return fail(node, `cannot resolve GetAtt ${id}.${attr}`)
    return v
  }

  const sub = (args: Value, node: unknown): Value => {
    const [text, vars] = Array.isArray(args)
      ? [asString(args[0]), asObj(args[1]) ?? {}]
      : [asString(args), {} as Obj]
    if (text === undefined) return fail(node, 'Fn::Sub needs a string')
    return text.replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
      if (name.startsWith('!')) return whole.replace('!', '')
      if (Object.hasOwn(vars, name)) return String(resolve(vars[name]!))
      if (name.includes('.') && !name.startsWith('AWS::')) {
        const dot = name.indexOf('.')
        return String(getAtt([name.slice(0, dot), name.slice(dot + 1)], node))
      }
      return String(ref(name, node))
    })
  }

  const resolve = (v: Value): Value => {
    if (Array.isArray(v)) {
      const out = v.map(resolve)
      copyPosition(v, out)
      return out
    }
    if (!isObj(v)) return v
    const keys = Object.keys(v)
    if (keys.length === 1) {
      const k = keys[0]!
      const arg = v[k]!
      switch (k) {
        case 'Ref':
          return ref(String(resolve(arg)), v)
        case 'Fn::Sub':
          return sub(arg, v)
        case 'Fn::GetAtt':
          return getAtt(typeof arg === 'string' ? arg.split('.') : (resolve(arg) as Value[]), v)
        case 'Fn::Join': {
          const [sep, list] = asList(arg)
          return asList(resolve(list ?? []))
            .map(String)
            .join(asString(sep) ?? '')
        }
        case 'Fn::Select': {
          const [i, list] = asList(arg)
          const item = asList(resolve(list ?? []))[Number(resolve(i ?? 0))]
          return item === undefined ? fail(v, 'Fn::Select index out of range') : item
        }
        case 'Fn::Split': {
          const [sep, text] = asList(arg)
          return String(resolve(text ?? '')).split(asString(sep) ?? '')
        }
        case 'Fn::FindInMap': {
          const [m, a, b] = asList(resolve(arg)).map(String)
          const found = asObj(asObj(mappings[m ?? ''])?.[a ?? ''])?.[b ?? '']
          return found === undefined ? fail(v, `cannot resolve Fn::FindInMap ${m}.${a}.${b}`) : resolve(found)
        }
        default:
          if (k.startsWith('Fn::') || k === 'Condition') {
            return fail(
              v,
              `cannot resolve ${k} from the template alone (conditions and imports need a deployed stack); replace it with a value, or import \`aws appmesh describe-*\` output`,
            )
          }
      }
    }
    const out: Obj = {}
    for (const [k, x] of Object.entries(v)) {
      const r = resolve(x)
      if (r !== null || x === null) out[k] = r
    }
    copyPosition(v, out)
    return out
  }

  const propsOf = (logicalId: string, node: unknown): Obj => {
    const done = resolvedProps.get(logicalId)
    if (done !== undefined) return done
    if (resolving.has(logicalId)) return fail(node, `circular reference through ${logicalId}`)
    resolving.add(logicalId)
    const res = asObj(resources[logicalId]) ?? {}
    const props = (resolve((res.Properties ?? {}) as Value) as Obj) ?? {}
    resolving.delete(logicalId)
    resolvedProps.set(logicalId, props)
    return props
  }

  const out: CfnResource[] = []
  for (const [logicalId, r] of Object.entries(resources)) {
    const res = asObj(r)
    const type = asString(res?.Type) ?? ''
    // Only the mesh's resources are resolved: an ECS service's `!ImportValue` is none of our business.
    if (
      res === undefined ||
      !(type.startsWith('AWS::AppMesh::') || /^AWS::ServiceDiscovery::\w+Namespace$/.test(type))
    )
      continue
    // Of a namespace only its Name matters (its Vpc is often an import from another stack).
    const properties = type.startsWith('AWS::ServiceDiscovery::')
      ? { Name: resolve((asObj(res.Properties)?.Name ?? null) as Value) }
      : propsOf(logicalId, res)
    out.push({
      logicalId,
      type,
      properties,
      line: lineOf(resources, logicalId),
    })
  }
  return out
}
