"""Chinese for the English error messages of the services: a catalogue of (pattern, template).

A list joined with "; " is translated part by part when every part is known; a leading
"where: " (a field, a row, a feature, a file) is put into Chinese and the rest translated the
same way; else the message is translated whole by the first entry that matches it. ``translate`` answers None when nothing fits —
``tests/web/test_messages_zh.py`` walks the source so that no message of the code is left so.

Templates are ``str.format`` strings over the match: ``{1}`` … the groups as written, ``{t}``
(a group named ``t``, ``t2`` …) through ``TERMS`` (a noun of the domain: grid → 网格).

Why one module of this size: most of it is the catalogue itself, one entry per message the code
can raise; the code that applies it is a few short functions at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Words of the domain as they stand in English messages (see the glossary).
TERMS = {
    "grid": "网格",
    "grids": "网格",
    "micro-grid": "微网格",
    "worker": "网格员",
    "workers": "网格员",
    "case": "事件",
    "department": "部门",
    "override area": "管辖例外区域",
    "photo": "照片",
    "camera": "摄像头",
    "user": "用户",
    "household": "住户",
    "households": "住户",
    "service point": "服务点",
    "path": "文件",
    "source": "来源",
    "reason": "原因",
    "kind": "类型",
    "role": "角色",
    "category": "事件类别",
    "solved": "solved（是否解决）",
    "level": "层级",
    "parent": "上级网格",
    "people": "人口数",
    "radius": "半径",
    "class": "分类",
    "min_zoom": "最小缩放级别",
    "code": "编码",
    "name": "名称",
    "date": "日期",
    "is_workday": "是否工作日",
    "tag": "标签",
    "status": "状态",
    "description": "描述",
}

#: Chinese names of the parameters and fields that messages start with ("lat: …").
FIELDS = {
    "lat": "纬度",
    "lon": "经度",
    "lon/lat": "经纬度",
    "x": "横坐标",
    "y": "纵坐标",
    "x/y": "瓦片坐标",
    "z": "缩放级别",
    "zoom": "缩放级别",
    "bbox": "范围",
    "level": "层级",
    "grid": "网格",
    "grid_id": "网格编号",
    "grid_code": "网格编码",
    "worker": "网格员",
    "worker_id": "网格员编号",
    "worker_code": "网格员编码",
    "department": "部门",
    "category": "事件类别",
    "status": "状态",
    "kind": "类型",
    "kinds": "类型",
    "format": "格式",
    "output": "输出格式",
    "file": "文件",
    "path": "文件",
    "body": "请求内容",
    "geometry": "几何图形",
    "properties": "属性",
    "name": "名称",
    "names": "名称",
    "code": "编码",
    "columns": "列",
    "fields": "字段",
    "role": "角色",
    "username": "用户名",
    "password": "密码",
    "active": "启用状态",
    "time": "时间",
    "hours": "小时数",
    "days": "天数",
    "source": "来源",
    "reason": "原因",
    "crs": "坐标系",
    "version": "版本号",
    "versions": "版本号",
    "ids": "编号",
    "members": "党员",
    "candidates": "候选点",
    "recommend": "选址建议",
    "summary": "汇总",
    "layers": "图层",
    "line": "分割线",
    "circle": "圆",
    "within_m": "距离米数",
    "method": "方法",
    "action": "操作",
    "weight": "权重",
    "group": "分组",
    "map": "字段映射",
    "k": "数量 k",
    "description": "描述",
    "event_type": "事件类型",
    "camera": "摄像头",
    "service_code": "服务代码",
    "service_request_id": "服务请求编号",
    "idempotency_key": "幂等键",
    "actor.role": "操作人角色",
    "service points": "服务点",
    "features": "要素",
    "location": "位置",
    "parent_code": "上级网格编码",
    "people": "人口数",
    "radius_m": "半径（米）",
    "min_zoom": "最小缩放级别",
    "class": "分类",
    "phone": "电话",
    "tags": "标签",
    "satisfaction": "满意度",
    "If-Match": "If-Match 请求头",
    "coordinates": "坐标",
}

Q = r"'(.*?)'"  # a quoted value, shown in Chinese quotation marks
N = r"(\S+?)"  # a number or a code

#: (pattern over the English, Chinese template). Order matters: the first full match wins.
CATALOGUE: list[tuple[str, str]] = [
    # ---- values
    (rf"{Q} is not an integer", "“{1}”不是整数"),
    (r"(.+) is not an integer", "{1} 不是整数"),
    (rf"{Q} is not a finite number", "“{1}”不是有效数字"),
    (r"(.+) is not a finite number", "{1} 不是有效数字"),
    (rf"{Q} holds a value that is not a number", "“{1}”中有不是数字的值"),
    (rf"not a number: {Q}, {Q}", "不是数字：“{1}”、“{2}”"),
    (rf"not a number: {Q}", "不是数字：“{1}”"),
    (rf"{Q} is not a number 0–(\d+)", "“{1}”不是 0–{2} 之间的数字"),
    (rf"(?P<t>[a-z_ ]+) {Q} is not a number 0–(\d+)", "{t}“{2}”不是 0–{3} 之间的数字"),
    (rf"{Q} is not a number", "“{1}”不是数字"),
    (r"not a number", "不是数字"),
    (r"(.+) is not a number", "{1} 不是数字"),
    (rf"{Q} is not a whole number", "“{1}”不是整数"),
    (rf"(?P<t>[a-z_ ]+) {Q} is not a whole number (\S+)", "{t}“{2}”不是 {3} 之间的整数"),
    (r"(.+) is not a whole number", "{1} 不是整数"),
    (
        rf"{Q} is not true or false \(1/0, true/false, yes/no\)",
        "“{1}”不是是/否值（可用 1/0、true/false、yes/no）",
    ),
    (rf"{Q} is not true or false", "“{1}”不是 true 或 false"),
    (r"(.+) is not true or false", "{1} 不是 true 或 false"),
    (rf"(?P<t>[a-z_]+) {Q} must be true or false", "{t}“{2}”必须是 true 或 false"),
    (r"must be true or false", "必须是 true 或 false"),
    (rf"{Q} is not a yes/no value \(1/0, true/false\)", "“{1}”不是“是/否”值（1/0、true/false）"),
    (rf"{Q} is not an ISO date or date-time", "“{1}”不是 ISO 日期或日期时间"),
    (rf"{Q} is not a W3C date-time", "“{1}”不是 W3C 日期时间"),
    (rf"{Q} is not HH:MM", "“{1}”不是 HH:MM 格式的时间"),
    (rf"work period time {Q} is not HH:MM", "工作时段的时间“{1}”不是 HH:MM 格式"),
    (rf"{Q} is not a phone number", "“{1}”不是电话号码"),
    (rf"{Q} is not a grid id", "“{1}”不是网格编号"),
    (rf"{Q} holds no version number", "“{1}”中没有版本号"),
    (rf"{Q} is not of the form target=source", "“{1}”不是“目标=来源”的形式"),
    (r"(.+?) m is outside (\S+?)\.\.(\S+?) m", "{1} 米超出范围 {2}–{3} 米"),
    (r"(.+?) is outside (\S+?)\.\.(\S+?) m", "{1} 超出范围 {2}–{3} 米"),
    (r"(.+?) is outside (\S+?)\.\.(\S+)", "{1} 超出范围 {2}–{3}"),
    (r"(.+?) is outside (\S+?)–(\S+)", "{1} 超出范围 {2}–{3}"),
    (
        r"(.+) is out of range \(a record id is at most (\S+)\)",
        "{1} 超出范围（记录编号最大为 {2}）",
    ),
    (
        rf"{Q} is out of range \(lon -180\.\.180, lat -90\.\.90\)",
        "“{1}”超出范围（经度 -180..180，纬度 -90..90）",
    ),
    (r"(.+) is out of range \((.+)\)", "{1} 超出范围（{2}）"),
    (r"(?:is )?out of range", "超出范围"),
    (r"(.+) must be positive", "{1} 必须大于 0"),
    (r"(.+) must be \[low, high\]", "{1} 必须是 [下限, 上限]"),
    (r"(.+) is negative", "{1} 不能为负数"),
    (r"(.+) is more than (.+)", "{1} 超过上限 {2}"),
    (r"(.+) is below (.+)", "{1} 低于下限 {2}"),
    (r"low (.+) exceeds high (.+)", "下限 {1} 大于上限 {2}"),
    (rf"{Q}: min must not exceed max", "“{1}”：最小值不能大于最大值"),
    (
        rf"{Q} must be minlon,minlat,maxlon,maxlat",
        "“{1}”的格式应为 最小经度,最小纬度,最大经度,最大纬度",
    ),
    (r"(.+) has the wrong type", "{1} 的类型不对"),
    (r"(.+) is not usable: (.+)", "{1} 不可用：{2}"),
    (r"(.+) has no time zone", "{1} 缺少时区"),
    # ---- required, text, length
    (r"(?:is )?required", "必须填写"),
    (r"is required: minlon,minlat,maxlon,maxlat", "必须填写：最小经度,最小纬度,最大经度,最大纬度"),
    (r"is required \(the camera code\)", "必须填写（摄像头编号）"),
    (r"is required \(the map's zoom, 0–24\)", "必须填写（地图缩放级别，0–24）"),
    (r"is required \((.+)\)", "必须填写（{1}）"),
    (r"both are required \(WGS84 degrees\)", "经度和纬度都必须填写（WGS84 度）"),
    (r"code and name are required", "编码和名称都必须填写"),
    (r"name is required", "名称必须填写"),
    (r"must be a single value, not a list or an object", "只能是单个值，不能是列表或对象"),
    (r"must not contain NUL(?: characters)?", "不能包含 NUL 字符"),
    (r"must be (?:text|a string)", "必须是文本"),
    (r"must be text or a number", "必须是文本或数字"),
    (r"must be text, not (\S+)(?: .*)?", "必须是文本，而不是 {1}"),
    (r"must be text \(a service code\)", "必须是文本（服务代码）"),
    (r"must be an integer", "必须是整数"),
    (r"(?:is )?longer than (\S+) characters", "超过 {1} 个字符"),
    (r"(?P<t>[a-z_ ]+) is longer than (\d+) characters", "{t}超过 {2} 个字符"),
    (rf"(?P<t>[a-z_ ]+) {Q} is longer than (\d+) characters", "{t}“{2}”超过 {3} 个字符"),
    (r"is too long \(at most (\d+) characters\)", "过长（最多 {1} 个字符）"),
    (r"at most (\d+) characters, no NUL", "最多 {1} 个字符，且不能包含 NUL 字符"),
    (r"must be (\d+)–(\d+) characters", "必须为 {1}–{2} 个字符"),
    (r"3–60 characters: letters, digits and _ \. @ -", "须为 3–60 个字符：字母、数字和 _ . @ -"),
    (r"must be a base64 text", "必须是 base64 文本"),
    (r"is not valid base64", "不是有效的 base64"),
    (r"is larger than (\S+) bytes", "超过 {1} 字节"),
    # ---- choices
    (
        rf"{Q} is not one of (.+) \(Shapefile: use the CLI\)",
        "“{1}”不是可选值之一（可选：{2}；Shapefile 请用命令行工具）",
    ),
    (rf"{Q} is not one of (.+)", "“{1}”不是可选值之一（可选：{2}）"),
    (rf"(?P<t>[a-z_ ]+) {Q} is not one of (.+)", "{t}“{2}”不是可选值之一（可选：{3}）"),
    (rf"{Q} is neither '(.*?)' nor '(.*?)'", "“{1}”既不是 {2} 也不是 {3}"),
    (rf"(?P<t>[a-z_ ]+) {Q} is not (\w+) or (\w+)", "{t}“{2}”不是 {3} 或 {4}"),
    (
        rf"(?P<t>[a-z_ ]+) {Q} is not (\w+), (\w+), (\w+) or (\w+)",
        "{t}“{2}”不是 {3}、{4}、{5} 或 {6}",
    ),
    (rf"{Q} is not (\w+) or (\w+)", "“{1}”不是 {2} 或 {3}"),
    (rf"{Q} is not (\w+), (\w+) or (\w+)", "“{1}”不是 {2}、{3} 或 {4}"),
    (rf"{Q}: choose from (.+)", "“{1}”：请从 {2} 中选择"),
    (rf"unknown kind {Q} \(use (.+)\)", "未知的类型“{1}”（请使用 {2}）"),
    (rf"unknown format {Q} \(use (.+)\)", "未知的格式“{1}”（请使用 {2}）"),
    (rf"unknown action {Q} \(known: (.+)\)", "未知的操作“{1}”（可用：{2}）"),
    (r"unknown method (.+)", "未知的方法 {1}"),
    (r"unknown state\(s\) (.+)", "未知的状态：{1}"),
    (r"unknown setting \(known: (.+)\)", "未知的设置项（可用：{1}）"),
    (r"unknown tag\(s\) (.+) \(known: (.+)\)", "未知的标签：{1}（可用：{2}）"),
    (r"unknown field\(s\) (.+); use (.+)", "未知的字段：{1}（可用：{2}）"),
    (r"a list of field names among (.+)", "应为字段名列表，可选：{1}"),
    (rf"cannot export {Q} \(use (.+)\)", "无法导出“{1}”（请使用 {2}）"),
    (rf"basemap kind {Q} is not one of (.+)", "底图类型“{1}”不是可选值之一（可选：{2}）"),
    (
        r"basemap features belong to no grid: they cannot be scoped",
        "底图要素不属于任何网格，无法按负责范围筛选",
    ),
    (
        rf"{Q} records belong to no grid: they cannot be scoped",
        "“{1}”记录不属于任何网格，无法按负责范围筛选",
    ),
    (rf"{Q} is no case category \(use one of (.+)\)", "“{1}”不是事件类别（请使用以下之一：{2}）"),
    (rf"category {Q} is unknown \(known: (.+)\)", "事件类别“{1}”不存在（可用：{2}）"),
    # ---- records that do not exist
    (rf"(?P<t>[a-z_ ]+?) {Q} (?:does|do) not exist", "{t}“{2}”不存在"),
    (r"(?P<t>[a-z_ -]+?) (\S+) (?:does|do) not exist", "{t} {2} 不存在"),
    (r"(.+) does not exist", "{1} 不存在"),
    (rf"(?P<t>[a-z_ ]+?) {Q} not found", "未找到{t}“{2}”"),
    (r"(?P<t>[a-z_ -]+?) (\S+) not found", "未找到{t} {2}"),
    (r"no service point with id (\S+)", "没有编号为 {1} 的服务点"),
    (rf"no tile layer {Q} \(layers: (.+)\)", "没有瓦片图层“{1}”（可用图层：{2}）"),
    (
        r"tile (\S+) does not exist at zoom (\S+) \(0–(\S+)\)",
        "缩放级别 {2} 下不存在瓦片 {1}（0–{3}）",
    ),
    (r"zoom (\S+) is outside 0–(\S+)", "缩放级别 {1} 超出范围 0–{2}"),
    (
        r"no PMTiles basemap is configured \(BASEMAP_PMTILES\)",
        "未配置 PMTiles 底图（BASEMAP_PMTILES）",
    ),
    (r"no access rule is declared for this endpoint", "此接口未声明访问规则"),
    (r"no such asset: (.+)", "找不到资源文件：{1}"),
    (
        r"(.+) is not installed: run `npm ci` \(\./scripts/setup\.sh does it\)",
        "{1} 未安装：请运行 npm ci（./scripts/setup.sh 会执行）",
    ),
    # ---- bodies, files, GeoJSON
    (r"send a JSON object", "请发送一个 JSON 对象"),
    (r"must be a JSON object", "必须是 JSON 对象"),
    (r"must be a JSON object of settings", "必须是设置项组成的 JSON 对象"),
    (r"expected a JSON object", "应为 JSON 对象"),
    (r"expected an object", "应为对象"),
    (r"JSON nested deeper than (\S+) levels", "JSON 嵌套超过 {1} 层"),
    (r"not JSON: (.+)", "不是 JSON：{1}"),
    (r"not a CSV: (.+)", "不是 CSV：{1}"),
    (r"cannot be read \((.+)\)", "无法读取（{1}）"),
    (rf"unsupported format {Q} \(use (.+)\)", "不支持的格式“{1}”（请使用 {2}）"),
    (
        rf"{Q}: use \.geojson, \.csv, \.gpkg or a zipped Shapefile \(\.zip\)",
        "“{1}”：请使用 .geojson、.csv、.gpkg 或压缩的 Shapefile（.zip）",
    ),
    (r"no file uploaded \(multipart form field 'file'\)", "未上传文件（multipart 表单字段 file）"),
    (r"holds no calendar rows", "没有日历数据行"),
    (r"a date is listed twice", "有日期重复出现"),
    (
        r"missing column\(s\) (.+) \(found (.+)\); use the field mapping option to name them",
        "缺少列 {1}（文件中的列：{2}）；请用字段映射选项指定对应的列",
    ),
    (rf"no {Q} column \(found (.+)\)", "没有“{1}”列（文件中的列：{2}）"),
    (
        r"the CSV needs lon/lat or x/y columns \(found (.+)\)",
        "CSV 需要 lon/lat 或 x/y 列（文件中的列：{1}）",
    ),
    (r"expected a list of Point features", "应为 Point 要素列表"),
    (r"expected a GeoJSON Feature object", "应为 GeoJSON Feature 对象"),
    (r"expected a GeoJSON FeatureCollection of Points", "应为由点组成的 GeoJSON FeatureCollection"),
    (
        r"expected a GeoJSON Feature with geometry and properties",
        "应为带 geometry 和 properties 的 GeoJSON Feature",
    ),
    (r"the geometry is not an object", "几何图形不是对象"),
    (r"(.+) is not a Point", "{1} 不是 Point（点）"),
    (r"(?P<t>[a-z_ -]+) geometry must be a Point", "{t}的几何图形必须是 Point（点）"),
    (r"(.+) geometry must be a Point", "{1} 的几何图形必须是 Point（点）"),
    (r"coordinates are not \[x, y\] number pairs \((.+)\)", "坐标不是 [x, y] 数字对（{1}）"),
    (
        r"(\S+) points; at most (\S+) per request \(use the CLI\)",
        "{1} 个点；每次请求最多 {2} 个（更多请用命令行工具）",
    ),
    (
        r"give GeoJSON lines \(a geometry, Feature or FeatureCollection\)",
        "请给出 GeoJSON 线（geometry、Feature 或 FeatureCollection）",
    ),
    (r"feature (\S+) is not valid GeoJSON: (.+)", "第 {1} 个要素不是有效的 GeoJSON：{2}"),
    (r"feature (\S+) is a (\S+), not a line", "第 {1} 个要素是 {2}，不是线"),
    (r"(.+) is not a Polygon or MultiPolygon", "{1} 不是 Polygon 或 MultiPolygon（面）"),
    (r"a (.+) must be a (\w+) or (\w+), not (.+)", "{1} 必须是 {2} 或 {3}，不能是 {4}"),
    (r"zero area", "面积为零"),
    (r"invalid \((.+)\)", "无效（{1}）"),
    (r"invalid geometry: (.+)", "几何图形无效：{1}"),
    (r"no geometry", "没有几何图形"),
    (r"empty", "为空"),
    (r"a new grid needs a Polygon or MultiPolygon", "新网格需要 Polygon 或 MultiPolygon（面）"),
    (
        r"a GeoJSON Polygon or MultiPolygon is required",
        "需要 GeoJSON Polygon 或 MultiPolygon（面）",
    ),
    (r"a split needs a LineString", "拆分需要一条 LineString（分割线）"),
    (r"the list is empty", "列表为空"),
    (r"the photo is empty", "照片是空的"),
    (
        r"the photo has (\S+) bytes; at most (\S+) are accepted",
        "照片有 {1} 字节，最多只接受 {2} 字节",
    ),
    (r"row (\S+)", "第 {1} 行"),
    (r"feature (\S+)", "第 {1} 个要素"),
    (r"file", "文件"),
    (r"geometry", "几何图形"),
    (r"the site needs lon and lat", "站点需要 lon 和 lat"),
    (r"every feature needs a Point geometry", "每个要素都需要 Point（点）几何图形"),
    (r"every candidate must be two numbers \[x, y\]", "每个候选点必须是两个数字 [x, y]"),
    (
        r"give \[\[lon, lat\], …\] or a FeatureCollection of points",
        "请给出 [[经度, 纬度], …] 或由点组成的 FeatureCollection",
    ),
    (r"spacing (\S+) m must be positive", "间距 {1} 米必须大于 0"),
    (rf"class {Q} is longer than (\d+) characters", "分类“{1}”超过 {2} 个字符"),
    (rf"code {Q} may hold only letters, digits, - and _", "编码“{1}”只能包含字母、数字、- 和 _"),
    (rf"(?:missing or )?duplicate code {Q}", "编码“{1}”缺失或重复"),
    (r"level (\S+) is not 1–5", "层级 {1} 不在 1–5 之内"),
    (r"level (\S+) is not below its parent's level (\S+)", "层级 {1} 不低于上级网格的层级 {2}"),
    (r"a level-(\S+) grid needs a parent_code", "第 {1} 级网格需要 parent_code（上级网格编码）"),
    (r"(\S+) m² lies outside its parent (\S+)", "有 {1} 平方米超出上级网格 {2}"),
    (r"overlaps sibling (\S+) by (\S+) m²", "与同级网格 {1} 重叠 {2} 平方米"),
    (r"(.+) at \((.+)\) lies in no leaf grid", "{1}（{2}）不在任何最下级网格内"),
    (r"lies in grid (\S+), not in (\S+) as the file says", "位于网格 {1}，而不是文件中写的 {2}"),
    (r"(.+) lies in grid (\S+): (.+)", "{1} 位于网格 {2}：{3}"),
    (r"no grids are loaded yet: import grids first", "尚未导入任何网格：请先导入网格"),
    (rf"is_workday {Q} is not true/false", "是否工作日“{1}”不是 true/false"),
    (rf"date {Q} is not YYYY-MM-DD", "日期“{1}”不是 YYYY-MM-DD 格式"),
    # ---- coordinates and CRS
    (
        rf"unknown CRS {Q}: use wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>",
        "未知的坐标系“{1}”：请使用 wgs84、cgcs2000、gcj02、bd09 或 EPSG:<代码>",
    ),
    (
        rf"unknown CRS {Q}: EPSG:(\S+) is not a known code",
        "未知的坐标系“{1}”：EPSG:{2} 不是已知的代码",
    ),
    (
        r"EPSG:(\S+) is neither geographic nor projected",
        "EPSG:{1} 既不是地理坐标系也不是投影坐标系",
    ),
    (r"outside the area of (.+)", "超出 {1} 的适用范围"),
    (
        r"in (.+) the point lands at \((.+)\), outside the CRS's area \(lon (.+), lat (.+)\); (.+)",
        "按 {1} 换算后该点落在（{2}），超出该坐标系的适用范围（经度 {3}，纬度 {4}）；请检查投影带是否正确，或东坐标与北坐标是否写反",
    ),
    (
        r"\((.+)\) look like lon/lat degrees, but (.+) is projected and takes metres \(easting, northing\); use crs=wgs84 for degrees",
        "（{1}）看起来是经纬度，但 {2} 是投影坐标系，坐标应以米为单位（东坐标、北坐标）；经纬度请用 crs=wgs84",
    ),
    (
        r"coordinates are required: x and y \(or lon and lat\)",
        "缺少坐标：请给出 x 和 y（或 lon 和 lat）",
    ),
    (
        r"give the point as lon=…&lat=… \(or x=…&y=… with a projected crs\)",
        "请以 lon=…&lat=… 给出位置（或以 x=…&y=… 并指定投影坐标系 crs）",
    ),
    (r"give both (\S+) and (\S+)", "请同时给出 {1} 和 {2}"),
    (
        r"lat and long are required \(address-only requests cannot be routed\)",
        "必须给出 lat 和 long（只有地址的请求无法分派）",
    ),
    (r"(\S+) longitudes but (\S+) latitudes", "经度有 {1} 个，纬度却有 {2} 个"),
    (
        r"point (\S+) has impossible coordinates lon=(\S+), lat=(\S+)",
        "第 {1} 个点的坐标不可能：经度 {2}，纬度 {3}",
    ),
    (r"circle radius (\S+) m must be a positive number", "圆半径 {1} 米必须是正数"),
    (
        r"circle of (\S+) m around \((.+)\) contains a pole",
        "以（{2}）为圆心、半径 {1} 米的圆包含了极点",
    ),
    (r"(\S+) segments are too few \(at least 8\)", "{1} 段太少（至少 8 段）"),
    # ---- coverage, partition, service points
    (r"(\S+) radii for (\S+) service points", "半径有 {1} 个，服务点却有 {2} 个"),
    (
        r"radius (\S+) m of service point (\S+) is not in \(0, (\S+)\]",
        "服务点 {2} 的半径 {1} 米不在 (0, {3}] 之内",
    ),
    (rf"radius {Q} is not 0–(\d+) m", "半径“{1}”不在 0–{2} 米之内"),
    (r"(\S+) ids for (\S+) points", "编号有 {1} 个，点却有 {2} 个"),
    (r"ids are not unique", "编号有重复"),
    (r"service point (\S+) is already present", "服务点 {1} 已存在"),
    (
        r"households must be \(lon, lat\) pairs, got shape (.+)",
        "住户坐标必须是 (经度, 纬度) 对，实际形状为 {1}",
    ),
    (
        r"household (\S+) has coordinates (.+) outside lon/lat range",
        "住户 {1} 的坐标 {2} 超出经纬度范围",
    ),
    (r"household (\S+) at \((.+)\) lies outside the grid", "住户 {1}（{2}）位于网格之外"),
    (r"grid ids and households differ in length", "网格编号与住户数量的长度不一致"),
    (r"arrays of different lengths", "各数组长度不一致"),
    (r"covered/weights do not match the households", "covered/weights 与住户不对应"),
    (r"k must be a whole number >= 0, got (.+)", "k 必须是不小于 0 的整数，实际为 {1}"),
    (r"k must be a whole number of at least 1, got (.+)", "k 必须是不小于 1 的整数，实际为 {1}"),
    (r"how many new sites\? give k", "要新增多少个站点？请给出 k"),
    (
        r"give exactly one of k, target_size or size_range(?: \(e\.g\. (.+)\))?",
        "k、target_size、size_range 三者只能给出一个",
    ),
    (r"target_size must be positive, got (.+)", "target_size（目标规模）必须大于 0，实际为 {1}"),
    (
        r"size_range must be 0 < low <= high, got (.+)",
        "size_range 必须满足 0 < 下限 <= 上限，实际为 {1}",
    ),
    (r"tolerance must lie between 0 and 1, got (.+)", "容差必须在 0 到 1 之间，实际为 {1}"),
    (r"roads must be LineStrings, got a (.+)", "道路必须是 LineString（线），实际为 {1}"),
    (r"the grid polygon is not valid: (.+)", "网格多边形无效：{1}"),
    (r"the grid polygon is empty", "网格多边形为空"),
    (
        r"the grid must be a Polygon or MultiPolygon, got (.+)",
        "网格必须是 Polygon 或 MultiPolygon（面），实际为 {1}",
    ),
    (
        r"the grid is not in lon/lat: its bounds (.+) leave \[-180, 180\] x \[-90, 90\]",
        "网格不是经纬度坐标：其范围 {1} 超出 [-180, 180] × [-90, 90]",
    ),
    (
        r"the micro-grid holds no households, so there is nothing to split",
        "该微网格内没有住户，无需划分",
    ),
    (r"the grid holds no households, so there is nothing to balance", "该网格内没有住户，无需均衡"),
    (
        r"cannot make (\S+) parts from (\S+) building points: households at one building point are never split apart",
        "无法把 {2} 个楼栋点分成 {1} 份：同一楼栋点的住户不会被拆开",
    ),
    (r"give (\S+) non-empty names, one per part", "请给出 {1} 个非空名称，每份一个"),
    (r"give a list of non-empty names, one per part", "请给出非空名称列表，每份一个"),
    (
        r"the sizes (\S+)\.\.(\S+) are too small for (\S+) households",
        "规模 {1}..{2} 对 {3} 户来说太小",
    ),
    (r"expected a list of non-empty names, one per part", "应为非空名称列表，每份一个"),
    (r"expected a list of grid ids", "应为网格编号列表"),
    (r"give a list of worker ids", "请给出网格员编号列表"),
    (r"a party member is listed twice", "有党员被重复列出"),
    (r"party member ids must be unique", "党员编号不能重复"),
    (r"give at least one party member to assign to the patches", "请至少给出一名党员以分配片区"),
    (r"give one version per id, in the same order", "请按相同顺序为每个编号给出一个版本号"),
    # ---- cases
    (
        r"case (\S+) is (\S+) \((.+?)\): '(.*)' is not allowed; allowed: (.+)",
        "事件 {1} 当前为“{3}”，不能执行“{4}”；可执行：{5}",
    ),
    (
        r"case (\S+) is at version (\S+), not (\S+): reload it",
        "事件 {1} 当前版本为 {2}，不是 {3}：请刷新后重试",
    ),
    (
        r"case (\S+) was changed by someone else meanwhile: reload it",
        "事件 {1} 已被他人修改：请刷新后重试",
    ),
    (
        r"case (\S+) is (\S+): merge into an open case",
        "事件 {1} 的状态为 {2}：请合并到尚未办结的事件",
    ),
    (r"case (\S+) cannot be merged into itself", "事件 {1} 不能合并到自身"),
    (
        r"case (\S+) is already with a functional department: it cannot be escalated further",
        "事件 {1} 已由职能部门办理，不能再上报升级",
    ),
    (
        rf"category {Q} names no escalation department(?: \('(.*)' does not exist\))?: case (\S+) cannot be escalated further",
        "事件类别“{1}”没有指定上报升级的部门：事件 {3} 不能再上报升级",
    ),
    (r"merge needs 'into': the case to merge into", "合并需要 into：要合并到的事件"),
    (rf"{Q} needs a note saying why or what was done", "“{1}”需要填写说明（原因或处理情况）"),
    (
        r"(.+) may not (\S+) case (\S+) \(needs one of: (.+)\)",
        "{1} 不能对事件 {3} 执行“{2}”（需要以下角色之一：{4}）",
    ),
    (
        r"nobody owns the place of case (\S+) \((.+)\): dispatch it to a worker by worker_id",
        "事件 {1} 所在位置（{2}）没有负责人：请用 worker_id 派单给网格员",
    ),
    (
        r"no neighbouring grid owner within (\S+) m of case (\S+) \((.+?)\)(?: is worker (\S+))?: return it to the centre instead",
        "事件 {2}（{3}）周边 {1} 米内没有相邻网格的负责人：请退回指挥中心",
    ),
    (
        r"grid (\S+) neither contains case (\S+) nor lies within (\S+) m of it",
        "网格 {1} 既不包含事件 {2}，也不在其 {3} 米之内",
    ),
    (
        rf"idempotency key {Q} was used for a different report \((.+)\)",
        "幂等键“{1}”已用于另一次上报（{2}）",
    ),
    (r"satisfaction (\S+) is outside 1–5", "满意度 {1} 超出 1–5"),
    (rf"satisfaction {Q} must be a whole number 1–5", "满意度“{1}”必须是 1–5 的整数"),
    (r"description is longer than (\d+) characters", "描述超过 {1} 个字符"),
    (r"at most (\S+) codes at once", "一次最多 {1} 个编号"),
    (
        r"name exactly one keeper: department_id / department_code, or worker_id / worker_code",
        "请指定且只指定一个负责方：部门（department_id 或 department_code）或网格员（worker_id 或 worker_code）",
    ),
    (
        r"override area (\S+) was changed meanwhile(?: \(version (\S+), you edited (\S+)\))?; reload it",
        "管辖例外区域 {1} 已被他人修改：请重新加载后再改",
    ),
    # ---- time and calendars
    (r"no working time within (\S+) days of (.+)", "{2} 起 {1} 天内没有工作时间"),
    (r"cannot add (\S+) working hours \(negative\)", "不能增加 {1} 个工作小时（为负数）"),
    (r"cannot add (\S+) working days \(negative\)", "不能增加 {1} 个工作日（为负数）"),
    (
        r"a time limit cannot be negative \((\S+) days, (\S+) hours\)",
        "时限不能为负（{1} 天，{2} 小时）",
    ),
    (r"a calendar needs at least one work period", "日历至少需要一个工作时段"),
    (
        r"work periods must be ordered and not overlap: (.+)",
        "工作时段必须按顺序排列且不能重叠：{1}",
    ),
    (
        r"give hours and/or days \(working time to add\)",
        "请给出 hours 和/或 days（要增加的工作时间）",
    ),
    # ---- accounts
    (r"a camera_feed account signs in with a token only", "视频接入账号只能用令牌登录"),
    (r"a department account must name its department", "部门账号必须指定所属部门"),
    (r"a (\S+) account must be linked to a worker", "{1} 账号必须关联一名网格员"),
]

#: Where a problem is: "row 3", "feature 2", "file", "geometry".
WHERE = [
    (re.compile(r"row (\S+)"), "第 {1} 行"),
    (re.compile(r"feature (\S+)"), "第 {1} 个要素"),
    (re.compile(r"file"), "文件"),
    (re.compile(r"geometry"), "几何图形"),
]


def _specificity(pattern: str) -> int:
    """How much fixed text a pattern holds: the more, the earlier it is tried (so that
    "satisfaction 6 is outside 1–5" meets its own entry before "… is outside …")."""
    pattern = re.sub(r"\(\?:([^()|]*)(?:\|[^()]*)?\)", r"\1", pattern)
    return len(re.sub(r"\((?:[^()]|\([^()]*\))*\)|\\.|[.+*?\[\]]", "", pattern))


#: Longer messages are not matched (the patterns stay quick whatever a value holds).
MAX_LENGTH = 2000

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.S), t)
    for p, t in sorted(CATALOGUE, key=lambda entry: -_specificity(entry[0]))
]
_PREFIX = re.compile(r"([^\s:'(]{1,80}|row \S+|feature \S+|[a-z]+ [a-z]+): (.+)", re.S)


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def chinese_part(message: str) -> str:
    """The Chinese half of a bilingual "中文 / English" message ("" when it has none)."""
    head = message.split(" / ", 1)[0].strip()
    return head if has_chinese(head) else ""


def english_part(message: str) -> str:
    """The English half of a message: all of it when it has no Chinese lead."""
    if not has_chinese(message):
        return message
    head, _, tail = message.partition(" / ")
    return tail.strip() if has_chinese(head) else ""


def _fill(match: re.Match[str], template: str) -> str:
    groups = [g or "" for g in (match.group(0), *match.groups())]
    named = {k: TERMS.get(v, v) if v else "" for k, v in match.groupdict().items()}
    return template.format(*groups, **named)


def _where(name: str) -> bool:
    return any(pattern.fullmatch(name) for pattern, _ in WHERE)


def field_zh(name: str) -> str:
    """A field, a row or a feature in Chinese: "lat" → "lat（纬度）", "row 3" → "第 3 行"."""
    for pattern, template in WHERE:
        m = pattern.fullmatch(name)
        if m:
            return _fill(m, template)
    label = FIELDS.get(name) or FIELDS.get(name.split(".")[-1])
    return f"{name}（{label}）" if label else name


def translate(message: str, _depth: int = 0) -> str | None:
    """The Chinese of an English message, or None when the catalogue has nothing for it.

    A message that already leads in Chinese gives its Chinese half.
    """
    message = message.strip()
    if has_chinese(message):
        return chinese_part(message) or message
    if len(message) > MAX_LENGTH:
        return None  # a value echoed at length: the generic lead is enough, and quick
    if "; " in message and _depth < 4:
        # A list ("row 3: …; row 4: …") first, so that no pattern runs across two items.
        parts = [translate(part, _depth + 1) for part in message.split("; ")]
        if all(parts):
            return "；".join(p for p in parts if p)
    m = _PREFIX.fullmatch(message) if _depth < 4 else None
    if m and (" " not in m.group(1) or m.group(1) in FIELDS or _where(m.group(1))):
        rest = translate(m.group(2), _depth + 1)
        if rest:
            return f"{field_zh(m.group(1))}：{rest}"
    for pattern, template in _RULES:
        m = pattern.fullmatch(message)
        if m:
            return _fill(m, template)
    return None


def _clean(text: str) -> str:
    # The browser shows what stands before " / ": a Chinese text never holds one.
    return text.replace(" / ", "/")


#: Leads naming what failed, by the request's endpoint (blueprint.function).
ACTION_ZH: dict[str, str] = {
    "locate_api.": "无法定位",
}

IMPORT_HEAD = re.compile(r"(.+?): (\d+) bad record\(s\), nothing was loaded — .*", re.S)


def _import_message(message: str, problems: list[object]) -> tuple[str, str] | None:
    """The Chinese and the English of an import refusal, rebuilt from its (localised) problems."""
    m = IMPORT_HEAD.fullmatch(message)
    if not m:
        return None
    rows = [p for p in problems if isinstance(p, dict)]
    zh = "；".join(
        f"{p.get('where_zh') or p.get('where', '?')}：{chinese_part(str(p.get('reason', '')))}"
        for p in rows[:5]
    )
    en = "; ".join(
        f"{p.get('where', '?')}: {p.get('reason_en') or english_part(str(p.get('reason', '')))}"
        for p in rows[:5]
    )
    more = len(problems) - 5
    return (
        f"{m.group(1)}：{m.group(2)} 条记录有误，未导入任何数据 — {zh}"
        + (f"（另有 {more} 条）" if more > 0 else ""),
        f"{m.group(1)}: {m.group(2)} bad record(s), nothing was loaded — {en}"
        + (f" (and {more} more)" if more > 0 else ""),
    )


def localise_problems(problems: list[object]) -> list[object]:
    """Per-row problems of an import refusal for people: ``reason`` as "中文 / English" (the
    English also as ``reason_en``), ``where`` kept as the file's locator ("row 3") with
    ``where_zh`` ("第 3 行"); a calendar's problem sentences become "中文 / English"."""
    out: list[object] = []
    for p in problems:
        if isinstance(p, dict):
            q = dict(p)
            where, reason = q.get("where"), q.get("reason")
            if isinstance(where, str) and where:
                q["where_zh"] = _clean(field_zh(where)) if not has_chinese(where) else where
            if isinstance(reason, str) and reason:
                en = english_part(reason)
                zh = chinese_part(reason) or translate(reason)
                if zh and en:
                    q["reason"] = f"{_clean(zh)} / {en}"
                    q["reason_en"] = en
            out.append(q)
        elif isinstance(p, str) and not has_chinese(p):
            zh = translate(p)
            out.append(f"{_clean(zh)} / {p}" if zh else p)
        else:
            out.append(p)
    return out


def localise(
    body: dict[str, object], lead: Callable[[str], str], endpoint: str | None = None
) -> dict[str, object]:
    """An error body ``{"code", "message", …}`` as people read it: ``message`` is
    "中文 / English" (Chinese first, so the browser shows the Chinese half), ``message_en`` the
    English; import problems are translated row by row. ``lead(code)`` gives a generic Chinese
    lead for a message the catalogue does not know."""
    out = dict(body)
    message = out.get("message")
    problems = out.get("problems")
    if isinstance(problems, list):
        out["problems"] = localise_problems(problems)
    if not isinstance(message, str) or not message:
        return out
    en = english_part(message)
    zh = chinese_part(message)
    rows = out.get("problems")
    rebuilt = _import_message(message, rows) if isinstance(rows, list) else None
    if rebuilt:
        zh, en = rebuilt
    if not zh:
        zh = translate(message) or ""
        if not zh:
            param = out.get("param")
            head = lead(str(out.get("code", "")))
            zh = f"{param}：{head}" if isinstance(param, str) and param else head
    zh = _clean(zh)
    for prefix, action in ACTION_ZH.items():
        if endpoint and endpoint.startswith(prefix) and not zh.startswith(action):
            zh = f"{action}：{zh}"
            break
    out["message"] = f"{zh} / {en}" if en else zh
    if en:
        out["message_en"] = en
    return out
